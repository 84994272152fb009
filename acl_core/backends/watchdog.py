"""One thread that fires cancel callbacks at deadlines, shared by every timed run.

A thread per timed run would cost a thread start per job. This keeps the deadlines armed now (a
run's, until it ends: a handful at most) and a thread that sleeps until the earliest deadline it
knows of; a run whose deadline is later than that wake-up arms without waking it, so a stream of
runs under the same timeout wakes the thread about once a timeout, and a timed run costs a dict
insert and delete. (A heap of deadlines disarmed lazily kept every finished run's entry, and the
model its callback holds, until its deadline passed: at 1,000 jobs/s under the 300 s job limit,
300,000 entries and every unloaded model's session.)
"""

import itertools
import math
import threading
import time
from collections.abc import Callable


class Watchdog:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, Callable[[], None]]] = {}
        self._ids = itertools.count()
        self._wake_at = math.inf  # when the thread looks next; an earlier deadline wakes it
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
        at = time.monotonic() + timeout_s
        with self._cond:
            self._armed[entry_id] = (at, on_expiry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="acl-watchdog", daemon=True)
                self._thread.start()
            elif at < self._wake_at:
                self._cond.notify()
        return entry_id

    def _disarm(self, entry_id: int) -> None:
        with self._cond:
            self._armed.pop(entry_id, None)  # gone already if it expired

    def _loop(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                # no name of this frame may keep a callback while the thread sleeps: a run's
                # callback holds its model, which must go when the run ends
                for entry_id in [entry_id for entry_id, (at, _) in self._armed.items() if at <= now]:
                    self._armed.pop(entry_id)[1]()
                self._wake_at = min((at for at, _ in self._armed.values()), default=math.inf)
                self._cond.wait(None if self._wake_at == math.inf else self._wake_at - now)


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
