"""Hears which jobs their callers cancelled while a worker ran them (the cancel script publishes
their ids, producer/client.py), so the executor can terminate an execution nobody waits for."""

import logging
import threading
from collections.abc import Callable

import redis

log = logging.getLogger(__name__)
#: longest a listener waits for a message before looking whether it should stop
POLL_S = 1.0


class CancelListener:
    """A thread calling ``on_cancel(job_id)`` for each id published on ``channel`` until closed.
    A cancel published while the connection is down is missed: that job's execution runs to its
    end and its answer is dropped, as before this listener existed."""

    def __init__(self, client: redis.Redis, channel: str, on_cancel: Callable[[str], None]) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]  # typed from redis-py 8.2 on
        self._channel, self._on_cancel = channel, on_cancel
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aclq-cancels", daemon=True)

    def start(self) -> None:
        self._pubsub.subscribe(self._channel)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=POLL_S)
                if message is not None and message["type"] == "message":
                    self._on_cancel(message["data"].decode("utf-8", "replace"))
            except redis.RedisError as exc:  # Redis restarting: redis-py resubscribes on the next read
                log.warning("cancel listener: %s", exc)
                self._stop.wait(POLL_S)
            except Exception:  # a bug here must not stop the listener for good
                log.exception("cancel listener failed on a message")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(POLL_S + 1)
        self._pubsub.close()
