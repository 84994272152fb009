"""The client's inbox bookkeeping, alone: which waits a notice wakes, and what is kept for waits
that start after their notice."""

import threading

from producer import keys
from producer.client import NOTICES_KEPT, _Inbox, _Slot


def slot() -> _Slot:
    return _Slot(threading.Event())


def test_a_notice_with_its_answer_wakes_every_wait_for_that_job_and_no_other():
    inbox = _Inbox("ns:inbox:c")
    first, second, other = slot(), slot(), slot()
    assert inbox.wait("j", first) and inbox.wait("j", second) and inbox.wait("k", other)
    assert inbox.notice([("j", b"answer")]) == []
    assert (first.data, second.data) == (b"answer", b"answer")
    assert first.wake.is_set() and second.wake.is_set() and not other.wake.is_set()
    assert list(inbox.waits) == ["k"]


def test_a_notice_without_its_answer_is_read_for_the_waits_only():
    inbox = _Inbox("ns:inbox:c")
    waiting = slot()
    assert inbox.wait("j", waiting)
    assert inbox.notice([("j", b""), ("nobody", b"")]) == ["j"]  # only j's answer is to read
    assert not waiting.wake.is_set()
    inbox.answer("j", b"read")
    assert waiting.data == b"read" and waiting.wake.is_set()


def test_a_wait_that_starts_after_its_notice_looks_at_once():
    inbox = _Inbox("ns:inbox:c")
    inbox.notice([("early", b"answer")])
    assert not inbox.wait("early", slot())  # its job's reply is there: read it now
    assert inbox.wait("early", slot())  # that notice is used up


def test_a_wait_that_ends_is_forgotten_and_the_ids_kept_are_bounded():
    inbox = _Inbox("ns:inbox:c")
    waiting = slot()
    inbox.wait("j", waiting)
    inbox.end("j", waiting)
    assert inbox.waits == {}
    inbox.notice([(str(i), b"") for i in range(NOTICES_KEPT + 10)])
    assert len(inbox.noticed) == NOTICES_KEPT and "0" not in inbox.noticed


def test_a_job_may_name_only_a_client_inbox_of_its_namespace():
    assert keys.is_client_inbox("ns", keys.client_inbox("ns", "0f3a"))
    assert not keys.is_client_inbox("ns", keys.client_inbox("other", "0f3a"))
    assert not keys.is_client_inbox("ns", "ns:job:j:state")
    assert not keys.is_client_inbox("ns", keys.client_inbox("ns", ""))
    assert not keys.is_client_inbox("ns", keys.client_inbox("ns", "a:b"))
