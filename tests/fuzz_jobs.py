"""Hypothesis strategies for malformed jobs: a valid job with its fields broken in every way the
wire allows (wrong types, huge or negative dims, shape/bytes mismatches, NaN or out-of-range
options, unknown attrs, unknown dtypes), and plain random bytes."""

import math

import msgpack
import numpy as np
from hypothesis import strategies as st

from producer.wire import WIRE_VERSION

anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=16),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
dims = st.integers(-3, 2**40) | st.just(0) | st.integers(1, 4)
dtypes = st.sampled_from(
    ["<f4", "<f8", "|b1", "<i8", "|u1", "<c8", "<U4", "|O", ">f4", "<f16", "float32", ""]
) | st.text(max_size=4)


@st.composite
def tensors(draw: st.DrawFn) -> object:
    shape = draw(st.lists(dims, max_size=4) | anything)
    dtype = draw(dtypes | anything)
    if draw(st.booleans()) and isinstance(shape, list) and all(type(d) is int and 0 <= d < 64 for d in shape):
        size = math.prod(shape) * 4 + draw(st.sampled_from([0, 0, 0, -4, 4, 1]))
        data: object = b"\0" * max(size, 0)
    else:
        data = draw(st.binary(max_size=64) | anything)
    tensor = {"dtype": dtype, "shape": shape, "data": data}
    if draw(st.booleans()):
        tensor.pop(draw(st.sampled_from(sorted(tensor))))
    return tensor


def valid_job(job_id: str, reply_key: str) -> dict[str, object]:
    a = {"dtype": "<f4", "shape": [2, 3], "data": np.ones((2, 3), np.float32).tobytes()}
    return {
        "version": WIRE_VERSION, "job_id": job_id, "model": "add", "model_version": None,
        "inputs": {"a": a, "b": dict(a)},
        "output_names": None, "options": {}, "device": None, "priority": 0, "deadline": None,
        "reply_key": reply_key, "enqueued_at": 1.0,
    }  # fmt: skip


@st.composite
def malformed_jobs(draw: st.DrawFn, job_id: str = "fuzz", reply_key: str = "") -> bytes:
    """msgpack bytes of a job with one to three fields broken, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=128))
    job = valid_job(job_id, reply_key)
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(sorted(job)))
        choice = draw(st.integers(0, 5))
        if choice == 0:
            job.pop(field, None)
        elif choice == 1:
            job["inputs"] = draw(
                st.dictionaries(st.text(max_size=3) | st.sampled_from(["a", "b", ""]), tensors(), max_size=3)
            )
        elif choice == 2:
            job["options"] = draw(
                st.dictionaries(
                    st.sampled_from(["stream_sync_timeout_ms", "event_sync_timeout_ms", "work_addr", "x"]),
                    st.integers(-(2**40), 2**40) | st.floats() | st.booleans() | st.text(max_size=3),
                    max_size=2,
                )
            )
        elif choice == 3:
            job["model"] = draw(
                st.sampled_from(["../add", "add/../../x", "", "nosuch", "a" * 200, "add\0"]) | st.text(max_size=8)
            )
        elif choice == 4:
            job["model_version"] = draw(st.integers(-5, 2**40) | anything)
        else:
            job[field] = draw(anything)
    return msgpack.packb(job, use_bin_type=True)
