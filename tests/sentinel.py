"""A Redis Sentinel deployment on this machine, on free ports: a primary, a replica and three
sentinels (quorum 2), for the failover tests and bench/failover.py."""

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import redis

from worker.embedded import RedisServer

MASTER_NAME = "aclq"
#: how long a sentinel waits before it calls the primary down; small, so a test fails over fast
DOWN_AFTER_MS = 1000
#: seconds the deployment may take to settle (replica in sync, sentinels aware of each other)
SETTLE_S = 30


class SentinelServer(RedisServer):
    """``redis-server --sentinel`` with a generated configuration (a sentinel rewrites its own
    file, so each has its own, in its own directory)."""

    READY = "Sentinel ID is"

    def __init__(self, primary_port: int, quorum: int = 2) -> None:
        super().__init__()
        self.primary_port = primary_port
        self.quorum = quorum

    def command(self) -> list[str]:
        config = self.dir / "sentinel.conf"
        config.write_text(
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.primary_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
        )
        return [self.binary, str(config), "--sentinel", "--port", str(self.port), "--bind", "127.0.0.1"]


class SentinelGroup:
    """A primary (AOF on), its replica and three sentinels; ``url`` is aclq's Sentinel URL."""

    def __init__(self) -> None:
        self.primary = RedisServer(appendonly=True)
        self.replica = RedisServer(appendonly=True, args=["--replicaof", "127.0.0.1", str(self.primary.port)])
        self.sentinels = [SentinelServer(self.primary.port) for _ in range(3)]

    def url(self, master_name: str = MASTER_NAME) -> str:
        hosts = ";".join(f"sentinel://127.0.0.1:{s.port}" for s in self.sentinels)
        return f"{hosts}/0?master_name={master_name}"

    def start(self) -> "SentinelGroup":
        for server in (self.primary, self.replica, *self.sentinels):
            server.start()
        self._settled()
        return self

    def _settled(self) -> None:
        """Until the replica is in sync and every sentinel knows the replica and the others."""
        deadline = time.monotonic() + SETTLE_S
        replica = redis.Redis(port=self.replica.port)
        while time.monotonic() < deadline:
            states = [self.sentinel(i).sentinel_master(MASTER_NAME) for i in range(len(self.sentinels))]
            synced = replica.info("replication").get("master_link_status") == "up"
            if synced and all(s["num-slaves"] >= 1 and s["num-other-sentinels"] >= 2 for s in states):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the Sentinel deployment did not settle in {SETTLE_S} s")

    def sentinel(self, index: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinels[index].port)

    def primary_port(self) -> int:
        """The port of the primary, as the first sentinel names it."""
        _, port = self.sentinel().sentinel_get_master_addr_by_name(MASTER_NAME)
        return int(port)

    @contextmanager
    def switch_watch(self) -> Iterator[dict[str, Any]]:
        """Within the block, a subscription to the first sentinel's ``+switch-master``; on leaving,
        waits for it and fills the dict: ``seconds`` from entering to the switch."""
        watch: dict[str, Any] = {}
        with self.sentinel().pubsub() as pubsub:
            pubsub.subscribe("+switch-master")
            pubsub.get_message(timeout=5)  # the subscription's confirmation
            started = time.monotonic()
            yield watch
            while "seconds" not in watch:
                message = pubsub.get_message(timeout=SETTLE_S)
                if message is None:
                    raise TimeoutError(f"no failover within {SETTLE_S} s")
                if message["type"] == "message":
                    watch["seconds"] = time.monotonic() - started

    def close(self) -> None:
        with ExitStack() as stack:
            for server in (self.primary, self.replica, *self.sentinels):
                stack.callback(server.close)

    def __enter__(self) -> "SentinelGroup":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
