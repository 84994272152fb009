"""Fail points: named places in the worker where a chaos test can stop it, deterministically.

A worker started with ``ACLQ_FAILPOINT=<name>`` stops the first time it reaches that place: it
pushes its pid onto ``keys.failpoint(ns, name)``, which the test waits on (an event, not a
sleep), then blocks until something is pushed onto ``keys.failpoint_release(ns, name)`` or the
process is killed. The test then injects its fault (SIGKILL, SIGTERM, a Redis restart) with the
worker exactly there. Unset, a fail point costs one comparison.

| name      | where the worker stops                                                         |
|-----------|--------------------------------------------------------------------------------|
| `hold`    | holding received messages not yet run: one that runs at once, or two gathering  |
| `execute` | jobs claimed (state `running`), before their model executes                     |
| `answer`  | jobs executed, before their answers are pushed                                   |
"""

import logging
import os
import time

import redis

from producer import keys
from producer.errors import ConfigError

log = logging.getLogger(__name__)
NAMES = ("hold", "execute", "answer")


class FailPoints:
    """The fail point this process was started with, if any; it fires once."""

    def __init__(self, client: redis.Redis, namespace: str, armed: str | None = None) -> None:
        armed = os.environ.get("ACLQ_FAILPOINT") if armed is None else armed
        if armed and armed not in NAMES:
            raise ConfigError(f"ACLQ_FAILPOINT={armed!r}: known fail points are {', '.join(NAMES)}")
        self._redis, self._namespace, self._armed = client, namespace, armed or None

    def reached(self, name: str) -> None:
        """Stop here if this is the armed fail point (once), until released or killed."""
        if self._armed != name:
            return
        self._armed = None
        log.warning("fail point %r reached: stopping until released", name)
        self._redis.lpush(keys.failpoint(self._namespace, name), os.getpid())
        while True:  # the fault may be a Redis restart: wait through it
            try:
                self._redis.blpop([keys.failpoint_release(self._namespace, name)], timeout=0)
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        log.warning("fail point %r released", name)
