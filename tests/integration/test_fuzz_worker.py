"""Malformed jobs through the whole worker path: in this process (2,000, every stage from
decode to execution) and against live worker processes (2,000 over Celery). Zero crashes, each
answered with an ACL code and a message, and a good job afterwards succeeds."""

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acl_core import Device
from producer import Client, JobFailed, Settings, keys
from producer.connection import redis_client
from producer.dispatch import make_celery, queue
from producer.wire import INFER_TASK, ResultEnvelope, TaskMessage
from tests.fuzz_jobs import malformed_jobs
from tests.messages import queued
from worker.executor import Executor
from worker.models import ModelCache, ModelRepository

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}
_ids = itertools.count()


def _plant(client: Client, data: bytes, job_id: str, inline: bool) -> bytes | None:
    """The job's records, as a client leaves them; its payload, when it travels inline."""
    ns = client.settings.namespace
    if not inline:
        client._redis.set(keys.job_input(ns, job_id), data, ex=600)
    client._redis.set(keys.job_state(ns, job_id), "queued", ex=600)
    return data if inline else None


def _answer(client: Client, job_id: str) -> ResultEnvelope:
    data = client._redis.lindex(keys.job_reply(client.settings.namespace, job_id), 0)
    assert data is not None, f"job {job_id} was not answered"
    return ResultEnvelope.decode(data, 1 << 24)


@pytest.fixture
def in_process(redis_server, model_repo, namespace):
    settings = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo))
    with Device(0) as device, Client(settings) as client:
        server = redis_client(settings)
        yield client, Executor(settings, device, ModelCache(device, ModelRepository(model_repo), 1 << 30), server, "f")
        server.close()


@pytest.mark.timeout(300)  # thousands of jobs: minutes on a slow machine
def test_every_malformed_job_is_answered_in_process(in_process):
    client, executor = in_process

    @given(st.data())
    @settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def run_one(data):
        n = next(_ids)
        job_id = f"fz{n}"
        reply_key = keys.job_reply(client.settings.namespace, job_id)
        inline = _plant(client, data.draw(malformed_jobs(job_id, reply_key)), job_id, inline=n % 2 == 0)
        executor.run([(job_id, inline)])  # must not raise, whatever the bytes
        result = _answer(client, job_id)
        if result.error is not None:
            assert result.error.code >= 100000 and result.error.message

    run_one()
    assert executor.counters.done + executor.counters.failed == 2_000
    job = client.submit("add", GOOD)
    executor.run(queued(client, job.id))
    assert job.result(1)["c"].sum() == 12
    assert executor.device.memory().live == 0  # nothing leaked across 2,000 malformed jobs


@pytest.mark.timeout(300)  # thousands of jobs: minutes on a slow machine
def test_live_workers_answer_2000_malformed_jobs(client):
    strategy = st.data()
    job_ids = []
    with make_celery(client.settings) as app:

        @given(strategy)
        @settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def plant(data):
            n = next(_ids)
            job_id = f"live{n}"
            reply_key = keys.job_reply(client.settings.namespace, job_id)
            inline = _plant(client, data.draw(malformed_jobs(job_id, reply_key)), job_id, inline=n % 2 == 0)
            # A well-formed message whose payload is not, sent by Celery itself (kombu's JSON
            # entries; msgpack bodies where the payload is inline).
            message = TaskMessage((job_id,), "add", (inline,) if inline else ())
            shared = queue(keys.shared_queue(client.settings.namespace))
            serializer = "msgpack" if inline else "json"
            app.send_task(INFER_TASK, args=message.args(), kwargs=message.kwargs(), queue=shared, serializer=serializer)
            job_ids.append(job_id)

        plant()
    codes = set()
    for job_id in job_ids:
        try:
            client.job(job_id).result(60)
        except JobFailed as exc:
            codes.add(exc.code)
            assert exc.message
    assert len(job_ids) == 2_000 and codes >= {100000}
    assert client.infer("add", GOOD, result_timeout_s=30)["c"].sum() == 12  # the workers kept serving
