"""The worker's job executor in this process, on a real device and a real Redis."""

import numpy as np
import pytest
import redis

from acl_core import Device
from producer import Client, JobFailed, Settings, keys
from producer.dispatch import REDIS_OPTIONS
from worker.executor import Executor
from worker.models import ModelCache, ModelRepository

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


@pytest.fixture
def setup(redis_server, model_repo):
    settings = Settings(redis_url=redis_server.url, namespace="executor", model_repo=str(model_repo))
    with Device(0) as device, Client(settings) as client:
        server = redis.Redis.from_url(settings.redis_url, **REDIS_OPTIONS)
        executor = Executor(settings, device, ModelCache(device, ModelRepository(model_repo), 1 << 30), server, "test")
        yield client, executor, device
        server.close()


def test_nothing_leaks_across_good_and_bad_jobs(setup):
    client, executor, device = setup
    jobs = []
    for i in range(60):
        inputs = GOOD if i % 3 else {"a": GOOD["a"]}  # every third job lacks an input
        jobs.append(client.submit("add", inputs))
        executor.run([jobs[-1].id])
    jobs.append(client.submit("nonzero", {"x": np.eye(4, dtype=np.float32)}))
    executor.run([jobs[-1].id])
    stats = device.memory()
    assert stats.in_use == 0 and stats.live == 0 and stats.peak > 0  # every output was freed
    assert (executor.counters.done, executor.counters.failed) == (41, 20)
    assert "done=41 failed=20" in repr(executor)
    with pytest.raises(JobFailed):
        jobs[0].result(1)
    assert jobs[1].result(1)["c"].sum() == 12


def test_a_redelivered_job_is_answered_once(setup):
    """Run the same job twice (as after a lost worker): the first answer stays the only one."""
    client, executor, _ = setup
    job = client.submit("add", GOOD)
    ns = client.settings.namespace
    payload = client._redis.get(keys.job_input(ns, job.id))
    executor.run([job.id])
    client._redis.set(keys.job_input(ns, job.id), payload)  # the redelivered copy finds its payload
    executor.run([job.id])
    assert client._redis.llen(keys.job_reply(ns, job.id)) == 1
    assert executor.counters.done == 1
    assert not client._redis.keys(keys.job_staging(ns, job.id, "*"))  # the second run's result was dropped


def test_expired_payload_is_answered(setup):
    client, executor, _ = setup
    job = client.submit("add", GOOD)
    client._redis.delete(keys.job_input(client.settings.namespace, job.id))
    executor.run([job.id])
    with pytest.raises(JobFailed, match="no payload: expired or never submitted"):
        job.result(1)


def test_too_large_outputs_are_answered_with_the_limit_error(setup, redis_server, model_repo):
    """NonZero turns 1,000,000 bytes of input into 4,000,000 of output: past a 1 MiB limit."""
    client, _, device = setup
    tight = Settings(redis_url=redis_server.url, namespace="executor", model_repo=str(model_repo), max_message_mb=1)
    server = redis.Redis.from_url(tight.redis_url, **REDIS_OPTIONS)
    executor = Executor(tight, device, ModelCache(device, ModelRepository(model_repo), 1 << 30), server, "tight")
    job = client.submit("nonzero", {"x": np.ones((500, 500), np.float32)})
    executor.run([job.id])
    with pytest.raises(JobFailed) as info:
        job.result(1)
    assert info.value.code == 300000 and "exceeds the 1048576-byte limit" in info.value.message
    assert device.memory().live == 0
    server.close()


@pytest.mark.timeout(300)  # thousands of jobs: minutes on a slow machine
def test_device_memory_back_to_baseline_after_5000_jobs(setup):
    """Every job's outputs are runtime-allocated on the device and freed once answered."""
    client, executor, device = setup
    baseline = device.memory()
    rng = np.random.default_rng(4)
    for _ in range(5000):
        x = (rng.random((3, 4)) > 0.5).astype(np.float32)
        job = client.submit("nonzero", {"x": x})
        executor.run([job.id])
    np.testing.assert_array_equal(job.result(1)["indices"], np.nonzero(x))
    after = device.memory()
    assert (after.in_use, after.live) == (baseline.in_use, baseline.live) == (0, 0)
    assert after.peak > 0 and executor.counters.done == 5000


def test_one_message_of_many_jobs_is_claimed_and_answered_in_two_round_trips(setup):
    client, executor, _ = setup
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    jobs = [client.submit("add", {"a": a * i, "b": a}) for i in range(8)]
    jobs.insert(3, client.submit("add", {"a": a}))  # a bad job amid good ones fails alone
    executor.run([jobs[0].id])  # answered before: in the message again, it is skipped
    real_pipeline, visits = executor._pipeline, []
    executor._pipeline = lambda commands: visits.append(1) or real_pipeline(commands)
    executor.run([job.id for job in jobs])
    assert len(visits) == 2  # one claim, one answer, for nine jobs
    for i, job in enumerate(j for j in jobs if j is not jobs[3]):
        np.testing.assert_array_equal(job.result(1)["c"], a * i + a)
    with pytest.raises(JobFailed) as info:
        jobs[3].result(1)
    assert info.value.code == 100017
    assert jobs[0].status().value == "done" and executor.counters.done == 8
