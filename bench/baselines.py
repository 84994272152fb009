"""Baselines the queue benchmark runs beside aclq on the same Redis: a plain Celery app (no-op
and echo tasks, msgpack serializer, Redis result backend) and a raw Redis LPUSH/BRPOP echo.

    BENCH_REDIS_URL=... celery -A bench.baselines worker -P solo    # the plain Celery worker
    python -m bench.baselines echo URL                             # the raw echo loop
"""

import os
import sys

import redis
from celery import Celery

from producer.dispatch import REDIS_OPTIONS
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


if "BENCH_REDIS_URL" in os.environ:  # the worker process started by bench.queue
    configure(os.environ["BENCH_REDIS_URL"])


@app.task(name="bench.noop")
def noop() -> None:
    return None


@app.task(name="bench.echo")
def echo(data: bytes) -> bytes:
    return data


def echo_loop(url: str) -> None:
    """Move each message from ECHO_IN to ECHO_OUT: the floor for a Redis round trip."""
    keep_message_buffers()
    client = redis.Redis.from_url(url, **REDIS_OPTIONS)  # the best client settings aclq knows
    while True:
        _, data = client.brpop([ECHO_IN])
        client.lpush(ECHO_OUT, data)


if __name__ == "__main__" and sys.argv[1:2] == ["echo"]:
    echo_loop(sys.argv[2])
