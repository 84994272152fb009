"""Redis AUTH and TLS end to end, and no password in what a worker or client logs."""

import numpy as np
import pytest

from producer import BrokerAuthError, BrokerFullError, Client, ConfigError, Settings
from producer.status import fetch_status
from worker.embedded import RedisServer
from worker.local import LocalCluster

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}
SECRET = "s3cret-Pa55"


def _tls_files(tmp_path):
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = tuple(str(tmp_path / n) for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(paths[0])
    cert.private_key_pem.write_to_path(paths[1])
    ca.cert_pem.write_to_path(paths[2])
    return paths


def _start(tmp_path, tls: bool) -> RedisServer:
    server = RedisServer(password=SECRET, tls=_tls_files(tmp_path) if tls else None)
    try:
        return server.start()
    except ConfigError as exc:
        server.close()
        if tls and "TLS" in str(exc):
            pytest.skip(f"{server.binary} was built without TLS")
        raise


@pytest.mark.parametrize("tls", [False, True], ids=["auth", "auth+tls"])
def test_password_and_tls_end_to_end(tmp_path, model_repo, tls, capfd):
    with _start(tmp_path, tls) as server:
        assert server.url.startswith("rediss://" if tls else "redis://")
        settings = Settings(redis_url=server.url, model_repo=str(model_repo), namespace="sec")
        with LocalCluster(settings, devices=[0], loglevel="INFO"), Client(settings) as client:
            assert client.infer("add", GOOD, result_timeout_s=30)["c"].sum() == 12
        wrong = Settings(redis_url=server.url.replace(SECRET, "wrong"), namespace="sec")
        with Client(wrong) as intruder, pytest.raises(BrokerAuthError, match="refused the user or password") as info:
            intruder.submit("add", GOOD)
        assert "wrong" not in str(info.value) and SECRET not in str(info.value)
        anonymous = Settings(redis_url=server.url.replace(f":{SECRET}@", ""), namespace="sec")
        with Client(anonymous) as stranger, pytest.raises(BrokerAuthError, match="requires a password") as info:
            stranger.submit("add", GOOD)
        assert "redis://:PASSWORD@" in str(info.value)
        with pytest.raises(BrokerAuthError, match="requires a password"):
            fetch_status(anonymous)  # `aclq status` says the same
    out, err = capfd.readouterr()
    assert SECRET not in out + err  # worker logs (INFO) and the client's errors mask the password


def test_a_full_redis_is_named_as_full_without_payload_bytes():
    """Redis at its maxmemory refuses the enqueue: BrokerFullError saying so and what to do,
    not a connection error quoting the failed command's bytes."""
    with RedisServer() as server:
        settings = Settings(redis_url=server.url, namespace="full")
        with Client(settings) as client:
            client._redis.config_set("maxmemory", "2mb")
            big = {"x": np.full((1 << 20,), 0xC1, np.uint8)}  # 1 MiB of a byte msgpack never writes
            with pytest.raises(BrokerFullError) as info:
                for _ in range(8):
                    client.submit("add", big)
    message = str(info.value)
    assert "maxmemory" in message and "ACLQ_RESULT_TTL_S" in message
    assert "\\x" not in message and "SET" not in message and len(message) < 300
