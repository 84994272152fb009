"""A worker's heartbeat: a Redis hash (producer.wire.WorkerBeat) refreshed every few seconds, read
by `aclq status` and `aclq health` (liveness: the key exists; readiness: ``ready`` is 1)."""

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from producer.wire import WorkerBeat

log = logging.getLogger(__name__)
#: seconds between heartbeats
HEARTBEAT_S = 5
#: a heartbeat key lives this long: three missed beats and the worker counts as gone
HEARTBEAT_TTL_S = 15
#: fewest seconds between beats when jobs nudge it, so status is fresh without a write per job
MIN_INTERVAL_S = 1


class Heartbeat:
    """Writes ``snapshot()`` to ``key`` every HEARTBEAT_S seconds until closed."""

    def __init__(self, client: redis.Redis, key: str, snapshot: Callable[[], WorkerBeat]) -> None:
        self._redis, self._key, self._snapshot = client, key, snapshot
        self._stop = threading.Event()
        self._nudged = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aclq-heartbeat", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        fields: dict[Any, Any] = self._snapshot().to_fields()  # redis-py's stub wants its own key type
        try:
            with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key)
                pipe.hset(self._key, mapping=fields)
                pipe.expire(self._key, HEARTBEAT_TTL_S)
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("heartbeat not written: %s", exc)

    def nudge(self) -> None:
        """Beat soon (a job finished): at most every MIN_INTERVAL_S, from the heartbeat thread."""
        self._nudged.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._nudged.wait(HEARTBEAT_S)
            self._nudged.clear()
            if self._stop.is_set():
                return
            try:
                self.beat()
            except Exception:  # a bug in a snapshot must not stop the heartbeat: the worker would look dead
                log.exception("heartbeat snapshot failed; beating again in %d s", HEARTBEAT_S)
            self._stop.wait(MIN_INTERVAL_S)

    def close(self) -> None:
        self._stop.set()
        self._nudged.set()
        self._thread.join(HEARTBEAT_S + 1)
        try:
            self._redis.delete(self._key)
        except redis.RedisError:
            pass
