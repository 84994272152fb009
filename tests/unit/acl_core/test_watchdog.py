"""The one thread that terminates timed runs at their deadlines."""

import threading
import time
import weakref

from acl_core.backends.watchdog import Watchdog


def test_a_block_that_outlives_its_deadline_is_called_back_and_one_that_ends_in_time_is_not():
    watchdog = Watchdog()
    late, early = threading.Event(), threading.Event()
    with watchdog.deadline(0.05, late.set):
        assert late.wait(10)  # fired while the block still runs
    with watchdog.deadline(0.05, early.set):
        pass
    with watchdog.deadline(0.2, lambda: None):  # a later deadline, outlived: early's must have passed
        assert not early.wait(0.3)


def test_an_earlier_deadline_wakes_a_thread_sleeping_on_a_later_one():
    watchdog = Watchdog()
    first, second = threading.Event(), threading.Event()
    started = time.monotonic()
    with watchdog.deadline(3600, first.set), watchdog.deadline(0.05, second.set):
        assert second.wait(10)
    assert time.monotonic() - started < 1800 and not first.is_set()


class Run:
    """What a run's callback belongs to (a model's session, in acl_core)."""

    def terminate(self) -> None:
        pass


def test_nothing_is_kept_of_a_run_that_ended():
    """An ended run is forgotten at once: nothing holds its callback, and so its model, not
    even the watchdog's thread, which went over the run's deadline while it was armed."""
    watchdog = Watchdog()
    woke = threading.Event()
    run = Run()
    with watchdog.deadline(0.05, woke.set), watchdog.deadline(300, run.terminate):
        assert woke.wait(10)  # the thread woke and went over both deadlines, the run's last
    gone = weakref.ref(run)
    del run
    assert gone() is None
