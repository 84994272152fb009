"""Renews the lease of the job a worker is running, so Redis gives it to nobody else meanwhile.

kombu's Redis transport keeps every delivered, unacknowledged message in a sorted set scored by
delivery time, and returns to its queue any message older than the visibility timeout: that is
how a job held by a worker killed with -9 comes back. With the visibility timeout short (30 s),
a dead worker's job comes back within about 35 s instead of kombu's default hour; renewing the
score of the running job every few seconds keeps a long job that is still running from coming
back and running twice at once.
"""

import logging
import threading
import time

import redis

from producer import keys

log = logging.getLogger(__name__)


class LeaseKeeper:
    """A thread that renews, every ``interval_s``, the leases of the jobs this worker holds."""

    def __init__(self, client: redis.Redis, interval_s: float) -> None:
        self._redis = client
        self._interval_s = interval_s
        self._held: dict[str, str] = {}  # task id -> kombu delivery tag
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aclq-lease", daemon=True)
        self._thread.start()

    def acquire(self, task_id: str, delivery_tag: str) -> None:
        with self._lock:
            self._held[task_id] = delivery_tag

    def release(self, task_id: str) -> None:
        with self._lock:
            self._held.pop(task_id, None)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            with self._lock:
                held = list(self._held.values())
            if not held:
                continue
            try:
                # XX: renew only what kombu still tracks; never re-add an acknowledged delivery.
                self._redis.zadd(keys.KOMBU_UNACKED_INDEX, dict.fromkeys(held, time.time()), xx=True)
            except redis.RedisError as exc:  # Redis restarting: the next round tries again
                log.warning("could not renew job leases: %s", exc)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self._interval_s + 1)
