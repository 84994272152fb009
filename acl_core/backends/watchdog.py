"""One thread that fires cancel callbacks at deadlines, shared by every timed run.

A thread per timed run would cost a thread start per job; this keeps a heap of deadlines and
wakes its thread only when a new deadline is the earliest, so a timed run costs a heap push.
"""

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._armed: set[int] = set()  # entries not yet finished; the heap drops others lazily
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def deadline(self, timeout_s: float, on_expiry: Callable[[], None]) -> "_Deadline":
        """``with watchdog.deadline(s, on_expiry):`` calls ``on_expiry`` from the watchdog
        thread if the block outlives ``timeout_s``.

        ``on_expiry`` runs under the watchdog's lock, so it never runs after the block exits.
        (A class, not a generator context manager: this is on every timed run's path, and
        contextlib's generator costs ~1 us more a run.)
        """
        return _Deadline(self, timeout_s, on_expiry)

    def _arm(self, timeout_s: float, on_expiry: Callable[[], None]) -> int:
        entry_id = next(self._ids)
        entry = (time.monotonic() + timeout_s, entry_id, on_expiry)
        with self._cond:
            earliest = not self._heap or entry < self._heap[0]
            heapq.heappush(self._heap, entry)
            self._armed.add(entry_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="acl-watchdog", daemon=True)
                self._thread.start()
            elif earliest:
                self._cond.notify()
        return entry_id

    def _disarm(self, entry_id: int) -> None:
        with self._cond:
            self._armed.discard(entry_id)

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                wait_s = self._heap[0][0] - time.monotonic()
                if wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                _, entry_id, on_expiry = heapq.heappop(self._heap)
                self._armed.discard(entry_id)
                on_expiry()


class _Deadline:
    """One armed deadline of a :class:`Watchdog`, for a ``with`` block."""

    __slots__ = ("_watchdog", "_timeout_s", "_on_expiry", "_entry_id")

    def __init__(self, watchdog: Watchdog, timeout_s: float, on_expiry: Callable[[], None]) -> None:
        self._watchdog, self._timeout_s, self._on_expiry = watchdog, timeout_s, on_expiry
        self._entry_id = -1

    def __enter__(self) -> None:
        self._entry_id = self._watchdog._arm(self._timeout_s, self._on_expiry)

    def __exit__(self, *exc: object) -> None:
        self._watchdog._disarm(self._entry_id)
