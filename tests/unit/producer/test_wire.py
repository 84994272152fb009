"""The wire format: round trips of every dtype, and every malformation named with its code."""

import dataclasses
import math
import re

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from acl_core import codes
from producer import codes as producer_codes
from producer.errors import WireError
from producer.status import Status, render
from producer.wire import (
    EXEC_OPTIONS,
    ROWS_HEADER,
    WIRE_VERSION,
    InputRef,
    JobEnvelope,
    JobStatus,
    OutputRef,
    ResultEnvelope,
    TaskMessage,
    WorkerBeat,
    decode_tensor,
    encode_tensor,
    leading_rows,
)

LIMIT = 1 << 24
ALL_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"] + [
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip


def test_producer_codes_equal_acl_core():
    """Every code the producer names is ACL's, by name and value (the producer cannot import acl_core)."""
    assert len(producer_codes.NAMES) >= 12
    for value, name in producer_codes.NAMES.items():
        assert getattr(codes, name) == value == getattr(producer_codes, name)
    assert producer_codes.TRANSIENT <= set(producer_codes.NAMES)


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3, 4)])
def test_tensor_round_trip(dtype, shape):
    a = (np.arange(math.prod(shape)) % 7).astype(dtype).reshape(shape)
    b = decode_tensor(msgpack.unpackb(msgpack.packb(encode_tensor(a))), "x")
    assert b.dtype == a.dtype and b.shape == a.shape
    np.testing.assert_array_equal(a, b)


def test_big_endian_and_non_contiguous_inputs_travel_little_endian_c_order():
    a = np.arange(12, dtype=">i4").reshape(3, 4).T
    b = decode_tensor(msgpack.unpackb(msgpack.packb(encode_tensor(a))), "x")
    assert b.dtype == np.dtype("<i4")
    np.testing.assert_array_equal(a, b)


def test_decode_is_zero_copy_over_the_message_bytes():
    packed = {"dtype": "<f4", "shape": [4], "data": np.ones(4, np.float32).tobytes()}
    b = decode_tensor(packed, "x")
    assert not b.flags.owndata and not b.flags.writeable


@given(
    hnp.arrays(st.sampled_from([np.dtype(d) for d in ALL_DTYPES]), hnp.array_shapes(min_dims=0, max_dims=4, max_side=5))
)
@settings(max_examples=200, deadline=None)
def test_job_round_trip_property(array):
    job = JobEnvelope("j", "m", {"x": array}, options={"stream_sync_timeout_ms": 5}, reply_key="r")
    back = JobEnvelope.decode(job.encode(LIMIT), LIMIT)
    np.testing.assert_array_equal(back.inputs["x"], array)
    assert back.inputs["x"].dtype == array.dtype
    assert (back.job_id, back.model, back.options, back.reply_key) == ("j", "m", {"stream_sync_timeout_ms": 5}, "r")


def test_unsupported_dtypes():
    with pytest.raises(WireError) as info:
        encode_tensor(np.array(["a"]))
    assert info.value.code == 100026
    with pytest.raises(WireError) as info:
        encode_tensor(np.array([object()]))
    assert info.value.code == 100026


def _job(**changes):
    message = {
        "version": WIRE_VERSION, "job_id": "j", "model": "m", "model_version": None,
        "inputs": {"x": {"dtype": "<f4", "shape": [2], "data": b"\0" * 8}}, "output_names": None,
        "options": {}, "device": None, "priority": 0, "deadline": None, "reply_key": "r", "enqueued_at": 1.0,
    }  # fmt: skip
    message.update(changes)
    return msgpack.packb(message)


def test_references_travel_whole():
    job = JobEnvelope(
        "j", "m", {"y": np.zeros(2, np.float32)}, reply_key="r",
        input_refs={"x": InputRef("s3://b/x.npy", rows=(3, 9)), "z": InputRef("/d/z.npz", key="a")},
        output_to=OutputRef("/out/j", "bin"), split_rows=True, notify_key="ns:inbox:c1",
    )  # fmt: skip
    back = JobEnvelope.decode(job.encode(LIMIT), LIMIT)
    assert (back.input_refs, back.output_to, back.split_rows) == (job.input_refs, job.output_to, True)
    assert back.notify_key == "ns:inbox:c1"
    # a job of a producer that predates split_rows and notify_key (the fields absent) does not
    # split, and its answer is noticed nowhere
    assert (JobEnvelope.decode(_job(), LIMIT).split_rows, JobEnvelope.decode(_job(), LIMIT).notify_key) == (False, None)
    answer = ResultEnvelope("j", "ok", written=("/out/j_0.bin",))
    assert ResultEnvelope.decode(answer.encode(LIMIT), LIMIT).written == ("/out/j_0.bin",)


@pytest.mark.parametrize(
    "data, code, fragment",
    [
        (b"\xc1", 100000, "not valid msgpack"),
        (msgpack.packb([1, 2]), 100000, "must be a msgpack map"),
        (_job(version=1), 100000, "wire version 1"),
        (_job(job_id=5), 100000, "'job_id' must be str"),
        (_job(priority=True), 100000, "'priority' must be int"),
        (_job(deadline="soon"), 100000, "'deadline' must be"),
        (_job(inputs=[1]), 100000, "'inputs' must be dict"),
        (_job(inputs={"x": 3}), 100000, "input 'x' must be a map of dtype, shape and data"),
        (_job(inputs={"x": {"dtype": "<U4", "shape": [1], "data": b"abcd"}}), 100026, "dtype '<U4'"),
        (_job(inputs={"x": {"dtype": "|O", "shape": [1], "data": b"12345678"}}), 100026, "dtype '|O'"),
        (_job(inputs={"x": {"dtype": "<f4", "shape": [-1], "data": b""}}), 100000, "non-negative ints"),
        (_job(inputs={"x": {"dtype": "<f4", "shape": [2**40, 2**40], "data": b""}}), 100000, "needs"),
        (_job(inputs={"x": {"dtype": "<f4", "shape": [1] * 40, "data": b"1234"}}), 100000, "at most 32"),
        (_job(inputs={"x": {"dtype": "<f4", "shape": [3], "data": b"\0" * 8}}), 100000, "needs 12 bytes, data holds 8"),
        (_job(inputs={"x": {"dtype": "<f4", "shape": [2], "data": "text"}}), 100000, "data must be bytes"),
        (_job(options={"work_addr": 1}), 100000, "unknown exec options ['work_addr']"),
        (_job(output_names=[1]), 100000, "'output_names' must be a list of names"),
        (_job(input_refs={"x": "/data/x.npy"}), 100000, "input reference 'x' must be a map of url, rows and key"),
        (_job(input_refs={"x": {"url": "/x.npy", "rows": [5, 2], "key": None}}), 100000, "with 0 <= start <= stop"),
        (_job(input_refs={"x": {"url": 7, "rows": None, "key": None}}), 100000, "'url' must be str"),
        (_job(output_to={"url": "/out/x", "format": "png"}), 100000, "format 'png': expected one of npz"),
        (_job(output_to={"url": "/out/x"}), 100000, "must be a map of url and format"),
        (_job(split_rows=1), 100000, "'split_rows' must be bool"),
        (_job(notify_key=b"ns:inbox:c1"), 100000, "'notify_key' must be str"),
        (b"\0" * (LIMIT + 1), 300000, "exceeds"),
    ],
)
def test_malformed_jobs_are_named(data, code, fragment):
    with pytest.raises(WireError) as info:
        JobEnvelope.decode(data, LIMIT)
    assert info.value.code == code
    assert fragment in info.value.message
    assert str(info.value).startswith(f"[{code} ")


@given(st.binary(max_size=256))
@settings(max_examples=2000, deadline=None)
def test_random_bytes_never_crash_decode(data):
    try:
        JobEnvelope.decode(data, LIMIT)
    except WireError as exc:
        assert exc.code in (100000, 100026, 300000)


def test_too_large_message_refused_on_encode():
    job = JobEnvelope("j", "m", {"x": np.zeros(1024, np.uint8)})
    with pytest.raises(WireError) as info:
        job.encode(512)
    assert info.value.code == 300000


def test_result_round_trip():
    from producer.wire import ErrorInfo

    ok = ResultEnvelope("j", "ok", {"y": np.ones(3)}, timings={"exec_ms": 1.5}, device=1, worker="w")
    back = ResultEnvelope.decode(ok.encode(LIMIT), LIMIT)
    assert back.device == 1 and back.timings == {"exec_ms": 1.5} and back.error is None
    failed = ResultEnvelope("j", "error", error=ErrorInfo(100017, "ACL_ERROR_MODEL_INPUT_NOT_MATCH", "bad"))
    assert ResultEnvelope.decode(failed.encode(LIMIT), LIMIT).error == failed.error


def test_exec_options_are_the_fields_of_acl_cores_exec_config():
    """The wire names the options a worker applies through ExecConfig: one list, derived here,
    so a field added on one side and not the other fails CI, not a job at run time."""
    from acl_core import ExecConfig

    assert EXEC_OPTIONS == tuple(f.name for f in dataclasses.fields(ExecConfig))


@pytest.mark.parametrize(
    "error",
    [{}, {"code": "100017", "name": "N", "message": "m"}, {"code": 1, "name": 2, "message": "m"}, {"code": 1}],
)
def test_a_result_with_a_malformed_error_is_a_wire_error(error):
    message = msgpack.packb(
        {"version": WIRE_VERSION, "job_id": "j", "status": "error", "outputs": {}, "error": error, "timings": {},
         "device": 0, "worker": "w", "attempt": 1, "batch_jobs": 1},
        use_bin_type=True,
    )  # fmt: skip
    with pytest.raises(WireError) as info:
        ResultEnvelope.decode(message, LIMIT)
    assert info.value.code == 100000 and "result error field" in info.value.message


def test_the_task_message_round_trips_and_names_what_is_malformed():
    message = TaskMessage(("a", "b"), "mlp")
    assert TaskMessage.from_body([message.args(), message.kwargs(), {}]) == message
    assert message.payloads() == [("a", None), ("b", None)]
    inline = TaskMessage(("a", "b"), "mlp", (b"envelope", None))
    headers, body = inline.celery_message("t1", "gen1@h")
    assert TaskMessage.from_body(msgpack.unpackb(body, raw=False)) == inline  # bytes stay bytes: no base64
    assert headers["id"] == headers["root_id"] == "t1" and headers["task"] == "aclq.infer"
    assert inline.payloads() == [("a", b"envelope"), ("b", None)]
    for body, fragment in [
        ({"not": "protocol 2"}, "task body must be [args, kwargs, embed]"),
        ([[["a"]], {}, {}], "task kwargs must be {'model': name"),  # no model: not as aclq sends it
        ([[["a"]], {"model": "mlp", "x": 1}, {}], "task kwargs must be {'model': name"),
        ([[["a"]], {"model": "mlp", "inline": [b"x", None]}, {}], "'inline' must hold an envelope or None per job"),
        ([[["a"]], {"model": "mlp", "inline": ["text"]}, {}], "'inline' must hold an envelope or None per job"),
        ([["a"], {"model": "mlp"}, {}], "task args must be [[job ids]]"),  # ids not a list
        ([[[]], {"model": "mlp"}, {}], "task args must be [[job ids]]"),
        ([[["a", 3]], {"model": "mlp"}, {}], "task args must be [[job ids]]"),
    ]:
        with pytest.raises(WireError, match=re.escape(fragment)) as info:
            TaskMessage.from_body(body)
        assert info.value.code == 100000


def test_a_task_message_says_its_jobs_rows_in_a_header():
    """The rows of a message's jobs travel in a header (what a worker claims and gathers by);
    a message without it, or with a value that is no count, counts a row a job."""
    headers, _ = TaskMessage(("a", "b"), "conv", rows=2730).celery_message("t", "here")
    assert headers[ROWS_HEADER] == 2730 and TaskMessage.rows_of(headers, 2) == 2730
    headers, _ = TaskMessage(("a", "b"), "conv").celery_message("t", "here")
    assert ROWS_HEADER not in headers and TaskMessage.rows_of(headers, 2) == 2
    for bad in (0, -3, 2.5, "64", True, None):
        assert TaskMessage.rows_of({ROWS_HEADER: bad}, 3) == 3


@pytest.mark.parametrize(
    ("inputs", "refs", "rows"),
    [
        ({"x": np.zeros((5, 3))}, {}, 5),
        ({"x": np.zeros((5, 3)), "y": np.zeros((5,))}, {}, 5),
        ({"x": np.zeros((5, 3)), "y": np.zeros((4,))}, {}, 1),  # no shared first axis
        ({"x": np.float32(2.0)}, {}, 1),  # a scalar brings one
        ({"x": np.zeros((0, 3))}, {}, 1),  # an empty job still costs a message
        ({}, {"x": InputRef("s3://b/x.npy", (100, 1465))}, 1365),
        ({"y": np.zeros((1365, 2))}, {"x": InputRef("/data/x.npy", (0, 1365))}, 1365),
        ({}, {"x": InputRef("/data/x.npy")}, 1),  # a whole file: its rows are not known here
    ],
)
def test_a_jobs_rows_are_the_first_axis_its_inputs_share(inputs, refs, rows):
    assert JobEnvelope("j", "m", inputs, input_refs=refs).rows == rows


def test_job_states_decode_and_an_unknown_one_is_named():
    assert JobStatus.decode(None) is JobStatus.NOT_FOUND
    assert JobStatus.decode(b"running") is JobStatus.RUNNING
    for raw in (b"not_found", b"exploded"):  # not_found is never stored: its absence is
        with pytest.raises(WireError, match="job state"):
            JobStatus.decode(raw)


BEAT = WorkerBeat(
    name="h/device1/pid7", host="h", device=1, runtime_device=0, provider="CPUExecutionProvider", pid=7,
    queues=("aclq.device.1", "aclq.shared"), ready=True, started_at=1.5, done=3, failed=1, done_recent=2,
    failed_recent=0, recent_s=60.0, last_job_at=2.5, models=("mlp:1", "add:2"), broken=("add:3",),
    memory_in_use=10, memory_total=20,
)  # fmt: skip


def test_the_heartbeat_round_trips_through_a_redis_hash():
    raw = {k.encode(): str(v).encode() for k, v in BEAT.to_fields().items()}  # as HGETALL returns it
    assert WorkerBeat.decode(raw) == BEAT
    assert WorkerBeat.decode({**raw, b"models": b""}).models == ()


@pytest.mark.parametrize(
    "change, fragment",
    [({b"pid": None}, "lacks field 'pid'"), ({b"done": b"many"}, "field 'done' must be int")],
)
def test_a_malformed_heartbeat_is_named(change, fragment):
    raw = {k.encode(): str(v).encode() for k, v in BEAT.to_fields().items()}
    for key, value in change.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    with pytest.raises(WireError, match=fragment):
        WorkerBeat.decode(raw)


def test_status_names_a_model_version_that_failed_to_load():
    table = render(Status(workers=[BEAT]))
    assert "model add:3 failed to load on h/device1/pid7; it serves the highest version that loads" in table


def test_rows_are_the_leading_dim_all_inputs_share_else_none():
    assert leading_rows({"a": np.zeros((3, 2)), "b": np.zeros((3, 5))}) == 3
    assert leading_rows({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}) == 0  # they disagree
    assert leading_rows({"a": np.zeros(()), "b": np.zeros((1,))}) == 0  # a scalar has no rows
    assert leading_rows({"a": [[1, 2], [3, 4]]}) == 2  # what a caller passes, before it is an array
    assert leading_rows({}) == 0
