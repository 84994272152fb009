"""Baselines the benchmark suite runs beside aclq on the same Redis: a plain Celery app (no-op,
echo and ONNX Runtime inference tasks carrying msgpack tensors, Redis result backend), a raw
Redis LPUSH/BRPOP echo, and ONNX Runtime in-process.

    BENCH_REDIS_URL=... BENCH_MODEL_REPO=... celery -A bench.baselines worker -P solo
    python -m bench.baselines echo URL                             # the raw echo loop
"""

import functools
import os
import sys
from typing import Any

import numpy as np
import onnxruntime as ort
import redis
from celery import Celery

from producer.connection import REDIS_OPTIONS
from producer.malloc import keep_message_buffers

ECHO_IN, ECHO_OUT = "bench:echo:in", "bench:echo:out"

app = Celery("bench.baselines", set_as_current=False)
app.conf.update(
    task_serializer="msgpack",
    result_serializer="msgpack",
    accept_content=["msgpack"],
    task_default_queue="bench.plain",
    worker_prefetch_multiplier=1,
    task_acks_late=True,
    worker_hijack_root_logger=False,
)


def configure(url: str) -> None:
    """Point the plain app (broker and result backend) at ``url``."""
    app.conf.update(broker_url=url, result_backend=url)


if "BENCH_REDIS_URL" in os.environ:  # the worker process started by bench.suite
    configure(os.environ["BENCH_REDIS_URL"])


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.echo")
def echo(data: bytes) -> bytes:
    return data


def pack(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Tensors as a plain Celery user would send them through msgpack: dtype, shape, bytes."""
    return {name: {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()} for name, a in arrays.items()}


def unpack(packed: dict[str, Any]) -> dict[str, np.ndarray]:
    return {name: np.frombuffer(t["data"], np.dtype(t["dtype"])).reshape(t["shape"]) for name, t in packed.items()}


@functools.cache
def session(path: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as an aclq worker on a CPU device
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


@app.task(name="bench.infer")
def infer(model: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Run a model of BENCH_MODEL_REPO with ONNX Runtime: a plain Celery inference task."""
    path = os.path.join(os.environ["BENCH_MODEL_REPO"], model, "1", "model.onnx")
    outputs = session(path).run(None, unpack(inputs))
    names = [o.name for o in session(path).get_outputs()]
    return pack(dict(zip(names, outputs)))


def echo_loop(url: str) -> None:
    """Move each message from ECHO_IN to ECHO_OUT: the floor for a Redis round trip."""
    keep_message_buffers()
    client = redis.Redis.from_url(url, **REDIS_OPTIONS)  # the best client settings aclq knows
    while True:
        _, data = client.brpop([ECHO_IN])
        client.lpush(ECHO_OUT, data)


if __name__ == "__main__" and sys.argv[1:2] == ["echo"]:
    echo_loop(sys.argv[2])
