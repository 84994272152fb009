"""Renews the leases of the messages a worker holds, so Redis gives them to nobody else meanwhile.

kombu's Redis transport keeps every delivered, unacknowledged message in a sorted set scored by
delivery time, and returns to its queue any message older than the visibility timeout: that is
how a job held by a worker killed with -9 comes back. With the visibility timeout short (30 s),
a dead worker's job comes back within about 35 s instead of kombu's default hour; renewing the
score of the held messages every few seconds keeps a long job that is still running from coming
back and running twice at once.

The set's name is kombu's to choose (``unacked_index_key``, ``global_keyprefix``): the keeper is
given it as kombu computes it (``producer.transport.Books``). A renewal that finds fewer of its
messages than it holds means kombu's books and aclq's disagree, and a message may be handed out
twice: that is logged, never silent.
"""

import logging
import threading
import time

import redis

from producer.transport import acknowledged, held

log = logging.getLogger(__name__)


class LeaseKeeper:
    """A thread that renews, every ``interval_s``, the leases of the messages this process holds:
    from the claim that took them (several at once, some waiting while others run) until they
    are acknowledged or put back (``producer.transport.held``)."""

    def __init__(self, client: redis.Redis, index_key: str, interval_s: float) -> None:
        self._redis = client
        self.index_key = index_key
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aclq-lease", daemon=True)
        self._thread.start()

    def renew(self) -> int:
        """Renew every held lease now; returns how many kombu still tracked."""
        tags = held()
        if not tags:
            return 0
        # XX: renew only what kombu still tracks, never re-add an acknowledged delivery;
        # CH: count what was renewed.
        renewed: int = self._redis.zadd(self.index_key, dict.fromkeys(tags, time.time()), xx=True, ch=True)  # type: ignore[assignment]
        if renewed < len(tags):
            self._report_missing(tags)
        return renewed

    def _report_missing(self, tags: list[str]) -> None:
        # A message acknowledged between the snapshot and the ZADD is gone rightly: only those
        # still held, and not acknowledged with their answers (worker/executor.py), count.
        scores = self._redis.zmscore(self.index_key, tags)
        still_held = set(held())
        missing = [
            tag for tag, score in zip(tags, scores) if score is None and tag in still_held and not acknowledged(tag)
        ]
        if missing:
            log.warning(
                "%d of %d held messages are not in kombu's %r: their leases cannot be renewed, and they "
                "may be delivered again (delivery tags %s)",
                len(missing), len(tags), self.index_key, ", ".join(missing[:5]),
            )  # fmt: skip

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.renew()
            except redis.RedisError as exc:  # Redis restarting: the next round tries again
                log.warning("could not renew message leases: %s", exc)
            except Exception:  # a bug here must not stop the renewals for good
                log.exception("lease renewal failed")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(self._interval_s + 1)
