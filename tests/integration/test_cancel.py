"""Cancellation on real workers: a job not yet started never runs, a running one's answer is
dropped, its callers and status() see it cancelled, and the jobs that share its run do not
notice; an AsyncClient wait that is itself cancelled cancels its job unless told not to."""

import asyncio
import threading
import uuid
from dataclasses import replace

import numpy as np
import onnxruntime as ort
import pytest
import redis

from acl_core import Device
from producer import AsyncClient, Client, JobCancelled, JobNotFound, JobStatus, Settings, keys
from producer.connection import redis_client
from tests import waits
from tests.messages import queued
from worker.cancels import CancelListener
from worker.executor import Executor
from worker.local import LocalCluster
from worker.models import ModelCache, ModelRepository

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


def mlp_input(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 64)).astype(np.float32)}


def test_cancelled_jobs_queued_or_running_and_the_jobs_around_them(cluster, model_repo):
    """One worker, stopped (fail point) with job `running` claimed: `running` and a queued
    `victim` are cancelled; then the worker goes on. `victim` is never claimed, `running`'s
    answer is dropped, and the three jobs sharing a message with a cancelled fourth run as a
    batch of three with their own outputs."""
    settings = replace(cluster.settings, namespace=f"{cluster.settings.namespace}-cancel")
    ns = settings.namespace
    with LocalCluster(settings, devices=[]) as held, Client(settings) as client:
        r = client._redis
        held.start_worker(0, env={"ACLQ_FAILPOINT": "execute"})
        held.wait_ready(r, 1)
        running = client.submit("add", GOOD)
        assert r.blpop([keys.failpoint(ns, "execute")], timeout=60)  # claimed, not executed
        assert running.status() is JobStatus.RUNNING
        victim = client.submit("add", GOOD)
        feeds = [mlp_input(i) for i in range(4)]
        partners = client.submit_many("mlp", feeds)  # one message, after victim's
        assert victim.cancel() is True and partners[1].cancel() is True and running.cancel() is True
        assert victim.status() is JobStatus.CANCELLED and running.status() is JobStatus.CANCELLED
        r.lpush(keys.failpoint_release(ns, "execute"), 1)
        for job, x in ((partners[0], feeds[0]), (partners[2], feeds[2]), (partners[3], feeds[3])):
            details = job.details(30)
            assert details.batch_jobs == 3  # ran together, without the cancelled one
            want = ort.InferenceSession(str(model_repo / "mlp" / "1" / "model.onnx")).run(None, x)[0]
            np.testing.assert_allclose(details.outputs["y"], want, rtol=1e-5, atol=1e-6)
        # By now the worker has handled victim's message (it came before the partners') and
        # answered running (its run ended before): neither changed a thing.
        for job in (victim, running, partners[1]):
            with pytest.raises(JobCancelled, match=job.id):
                job.result(5)
            assert job.status() is JobStatus.CANCELLED
        assert r.hget(keys.job_runs(ns, victim.id), "n") is None  # never claimed
        assert r.hget(keys.job_runs(ns, running.id), "n") == b"1"  # claimed once, its answer dropped
        assert held.workers[0].poll() is None
    flush(cluster, ns)


def flush(cluster, ns: str) -> None:
    with redis.Redis.from_url(cluster.settings.redis_url) as r:
        for key in r.scan_iter(match=f"*{ns}*"):
            r.delete(key)


def test_a_cancel_after_the_answer_changes_nothing(either_client):
    job = either_client.submit("add", GOOD)
    assert job.result(30)["c"].sum() == 12
    assert job.cancel() is False
    assert job.status() is JobStatus.DONE and job.result(1)["c"].sum() == 12
    with pytest.raises(JobNotFound, match="to cancel"):
        either_client.job(f"never-{uuid.uuid4().hex}").cancel()


@pytest.mark.parametrize("cancel_if_abandoned", [True, False])
def test_an_abandoned_async_wait_cancels_its_job_unless_told_not_to(cluster, raw_redis, cancel_if_abandoned):
    async def abandon() -> JobStatus:
        async with AsyncClient(cluster.settings) as client:
            job = await client.submit("add", GOOD, device=7)  # no worker serves device 7: it waits
            waiting = asyncio.ensure_future(job.result(cancel_if_abandoned=cancel_if_abandoned))
            while not waits.blocked_on_reply(raw_redis):
                await asyncio.sleep(0.01)  # until the wait blocks on the reply (Redis has no event for it)
            waiting.cancel()  # the caller went away
            with pytest.raises(asyncio.CancelledError):
                await waiting
            return await job.status()

    expected = JobStatus.CANCELLED if cancel_if_abandoned else JobStatus.QUEUED
    assert asyncio.run(abandon()) is expected


def wait_for_state(r: redis.Redis, key: str, state: bytes) -> None:
    """Until ``key`` holds ``state``: keyspace events, not a sleep."""
    r.config_set("notify-keyspace-events", "K$")
    with r.pubsub() as sub:
        sub.subscribe(f"__keyspace@0__:{key}")
        while r.get(key) != state:
            sub.get_message(timeout=1.0)


def test_a_running_job_cancelled_frees_its_device(cluster, client, raw_redis):
    """A job that would execute for minutes (slow, 10**7 iterations), cancelled once claimed: its
    worker skips or terminates the execution, so the next job on that device is answered in
    seconds, not after it (the test's 60 s limit would end first)."""
    ns = cluster.settings.namespace
    slow = client.submit("slow", {"x": np.ones((64, 64), np.float32), "iterations": np.array(10**7)}, device=1)
    wait_for_state(raw_redis, keys.job_state(ns, slow.id), b"running")
    assert slow.cancel() is True
    assert client.submit("add", GOOD, device=1).result(30)["c"].sum() == 12
    with pytest.raises(JobCancelled):
        slow.result(1)
    assert slow.status() is JobStatus.CANCELLED


def test_an_execution_in_progress_is_terminated_when_its_job_is_cancelled(redis_server, model_repo, namespace):
    """The executor in this process, its cancel listener on the real channel: the job's execution
    is under way (seen in the executor's own state) when the caller cancels; the execution is
    terminated, well before the minutes it would take."""
    settings = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo))
    with Device(0) as device, Client(settings) as client:
        server = redis_client(settings)
        executor = Executor(settings, device, ModelCache(device, ModelRepository(model_repo), 1 << 30), server, "t")
        listener = CancelListener(server, keys.job_cancels(namespace), executor.cancelled)
        listener.start()
        slow = client.submit("slow", {"x": np.ones((64, 64), np.float32), "iterations": np.array(10**7)})
        running = threading.Thread(target=executor.run, args=(queued(client, slow.id),))
        running.start()
        while executor._executing is None:  # until the model runs (the executor's own state)
            running.join(0.01)
        assert slow.cancel() is True
        running.join(30)
        assert not running.is_alive()  # terminated, not run to its end
        with pytest.raises(JobCancelled):
            slow.result(1)
        listener.close()
        server.close()
