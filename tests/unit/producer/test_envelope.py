"""Building a job envelope: every option checked before anything is sent."""

import msgpack
import numpy as np
import pytest

from producer import BrokerConnectionError, ConfigError, JobCancelled, JobNotFound, ResultTaken, Settings, keys
from producer.client import _Core
from producer.transport import decode_entry
from producer.wire import ROWS_HEADER, JobEnvelope, ResultEnvelope, TaskMessage

A = {"a": np.ones(2, np.float32)}


@pytest.fixture
def jobs():
    return _Core(Settings(redis_url="redis://127.0.0.1:1/0", namespace="t"))


def test_defaults_and_fields(jobs):
    options = {"version": 2, "options": {"stream_sync_timeout_ms": 5}, "device": 1, "host": "h", "priority": 3}
    job = jobs.envelope("add", A, options)
    assert (job.model, job.model_version, job.device, job.host, job.priority) == ("add", 2, 1, "h", 3)
    assert job.reply_key == f"t:job:{job.job_id}:reply" and len(job.job_id) == 32
    assert jobs.envelope("add", A, {"timeout_s": 5}).deadline == pytest.approx(job.enqueued_at + 5, abs=1)


@pytest.mark.parametrize(
    "options, fragment",
    [
        ({"priority": 10}, "priority 10 must be 0 (first) .. 9 (last)"),
        ({"host": "h"}, "host 'h' needs a device"),
        ({"options": {"work_addr": 1}}, "unknown exec options ['work_addr']"),
        ({"devce": 1}, "unknown submit options ['devce']"),
    ],
)
def test_bad_options_are_named(jobs, options, fragment):
    with pytest.raises(ConfigError) as info:
        jobs.envelope("add", A, options)
    assert fragment in str(info.value)


def sent_message(command: tuple) -> tuple[str, dict, TaskMessage]:
    """The queue key, kombu entry and task of a message the core's LPUSH carries."""
    name, key, raw = command
    assert name == "LPUSH"
    entry = decode_entry(raw)
    return key, entry, TaskMessage.from_body(msgpack.unpackb(entry["body"], raw=False))


def test_fresh_jobs_are_enqueued_in_one_transaction_small_ones_inline(jobs):
    """The core's enqueue, driven by hand (no Redis): states, the payloads too large to travel
    inline, the message and its doorbell, all in one MULTI."""
    big = {"a": np.ones(20_000, np.float32)}  # 80 kB: over the 4 KiB default
    steps = jobs.enqueue("add", [A, big], {"priority": 3})
    multi = next(steps)
    assert multi.transaction and [c[0] for c in multi.commands] == ["SET", "SET", "SET", "LPUSH", "LPUSH", "LTRIM"]
    small_id, big_id = (multi.commands[i][1].split(":")[2] for i in (0, 1))
    assert multi.commands[0][3:] == ("NX", "EX", jobs.settings.payload_ttl_s)  # reserved, never overwritten
    assert multi.commands[2][1] == keys.job_input("t", big_id)  # the large payload waits under its key
    key, entry, task = sent_message(multi.commands[3])
    assert key == keys.queue_key(keys.shared_queue("t"), 3) and entry["properties"]["priority"] == 3
    assert task.job_ids == (small_id, big_id) and task.model == "add"
    assert entry["headers"][ROWS_HEADER] == 2 + 20_000  # the rows of its jobs together
    small, large = task.inline
    assert large is None and JobEnvelope.decode(small, 1 << 20).job_id == small_id
    assert multi.commands[4][1] == keys.queue_bell(keys.shared_queue("t"))
    with pytest.raises(StopIteration) as done:
        steps.send([True] * 6)
    assert done.value.value == [(small_id, True, False), (big_id, True, False)]  # no inbox: never waited


def test_a_caller_job_id_is_reserved_first_and_freed_when_its_message_cannot_be_sent(jobs):
    """An existing id is returned as it is (what this call set beside it goes); a free one is
    reserved, and freed again when its message cannot be sent, for a retry to enqueue it."""
    big = {"a": np.ones(20_000, np.float32)}
    steps = jobs.enqueue("add", [big], {"job_id": "mine"})
    reserve = next(steps)
    assert [c[:2] for c in reserve.commands] == [
        ("SET", keys.job_state("t", "mine")),
        ("SET", keys.job_input("t", "mine")),
    ]
    stray = steps.send([None, True])  # its state existed: a job of that id is there already
    assert stray.commands == (("DEL", keys.job_input("t", "mine")),)
    with pytest.raises(StopIteration) as done:
        steps.send([1])
    assert done.value.value == [("mine", False, False)]

    steps = jobs.enqueue("add", [A], {"job_id": "mine"})
    next(steps)
    send = steps.send([True])
    assert not send.transaction and sent_message(send.commands[0])[2].job_ids == ("mine",)
    rollback = steps.throw(BrokerConnectionError("Redis at x: down"))
    assert rollback.commands == (("DEL", keys.job_state("t", "mine")),)
    with pytest.raises(BrokerConnectionError, match="down"):
        steps.send([1])


def test_a_wait_ends_in_job_not_found_when_the_job_vanished(jobs):
    steps = jobs.result("j1", None, known=True, notified=False)
    wait = next(steps)
    assert wait.commands == (("BLPOP", keys.job_reply("t", "j1"), 1.0), ("GETDEL", keys.job_out("t", "j1")))
    look = steps.send([None, None])  # one slice, then a look
    assert [c[0] for c in look.commands] == ["LPOP", "GETDEL", "GET"]  # the look takes a reply it finds
    with pytest.raises(JobNotFound, match="Redis lost it"):
        steps.send([None, None, None])


@pytest.mark.parametrize(
    ("element", "out"),
    [("answer", None), ("", "answer"), (None, "answer")],
    ids=["in the reply", "large: a marker in the reply", "large: the marker taken by another wait"],
)
def test_a_wait_reads_a_large_answer_from_out_in_the_same_round_trip(jobs, element, out):
    steps = jobs.result("j1", None, known=True, notified=False)
    next(steps)
    answer = ResultEnvelope("j1", "ok", {"y": np.arange(3, dtype=np.float32)}).encode(1 << 20)
    read = {"answer": answer, "": b"", None: None}
    with pytest.raises(StopIteration) as answered:
        steps.send([(b"reply", read[element]) if element is not None else None, read[out]])
    np.testing.assert_array_equal(answered.value.value.outputs["y"], np.arange(3, dtype=np.float32))


def test_a_marker_whose_answer_another_wait_took_is_looked_at(jobs):
    """A marker popped without its ``out``: the answer went to another wait; the look says so."""
    steps = jobs.result("j1", None, known=True, notified=False)
    next(steps)
    look = steps.send([(b"r", b""), None])
    assert [c[0] for c in look.commands] == ["LPOP", "GETDEL", "GET"]
    with pytest.raises(ResultTaken):
        steps.send([None, None, b"done"])


@pytest.mark.parametrize(
    ("state", "error", "message"),
    [(b"done", ResultTaken, "read already"), (b"failed", ResultTaken, "read already"),
     (b"cancelled", JobCancelled, "was cancelled")],
)  # fmt: skip
def test_a_look_at_an_answered_job_whose_reply_is_gone_says_why(jobs, state, error, message):
    """A result is delivered once: after its wait took it, another reader is told so, not left
    waiting for an answer that came and went."""
    steps = jobs.result("j1", None, known=False, notified=False)
    assert [c[0] for c in next(steps).commands] == ["LPOP", "GETDEL", "GET"]
    with pytest.raises(error, match=message):
        steps.send([None, None, state])


def test_a_look_at_a_running_job_waits_on(jobs):
    steps = jobs.result("j1", None, known=False, notified=False)
    next(steps)
    wait = steps.send([None, None, b"running"])
    assert wait.commands[0][0] == "BLPOP"


@pytest.mark.parametrize("window", [0, -1])
def test_a_map_window_below_one_is_refused(jobs, window):
    with pytest.raises(ConfigError, match="window must be at least 1"):
        jobs.map_room(window, 0)
