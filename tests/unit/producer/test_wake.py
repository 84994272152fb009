"""The sync client's wake-up (producer.client._Wake): an Event for one waiting thread, whose
wait takes the wake-up."""

import threading

from producer.client import _Wake


def test_a_wait_after_set_returns_at_once_and_takes_the_wake_up():
    wake = _Wake()
    wake.set()
    assert wake.wait(5)
    assert not wake.wait(0.01)  # taken: the next wait waits


def test_sets_before_a_wait_wake_it_once():
    wake = _Wake()
    wake.set()
    wake.set()  # set already: no error, nothing more to take
    assert wake.wait(5)
    assert not wake.wait(0.01)


def test_clear_drops_a_wake_up_and_never_blocks():
    wake = _Wake()
    wake.clear()  # not set: returns at once
    wake.set()
    wake.clear()
    assert not wake.wait(0.01)


def test_a_timeout_below_zero_does_not_wait_as_an_events_does():
    wake = _Wake()
    assert not wake.wait(-0.5)
    wake.set()
    assert wake.wait(-0.5)


def test_a_wait_in_one_thread_is_woken_by_a_set_in_another():
    wake, woken = _Wake(), []
    waiting = threading.Thread(target=lambda: woken.append(wake.wait(30)))
    waiting.start()
    wake.set()
    waiting.join(30)
    assert woken == [True]
