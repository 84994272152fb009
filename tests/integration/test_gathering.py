"""Dynamic batching across messages, in a live worker: jobs submitted one by one (one Celery
message each) wait in the worker for their model's delay and run as one execution; without a
delay, those waiting together in the queue run as one execution."""

import shutil
import uuid

import numpy as np
import onnxruntime as ort
import pytest

from producer import Client, Settings, keys
from producer.dispatch import celery_config
from producer.transport import Books
from worker.local import LocalCluster

#: long enough that only a full batch, or another model's job, runs a batch before it
DELAY_MS = 1000


@pytest.fixture(scope="module")
def cluster(redis_server, model_repo, tmp_path_factory):
    """One worker whose mlp batches up to 4 jobs waiting up to DELAY_MS; mlp_now, the same
    model, up to 4 jobs without a delay; add does not batch."""
    repo = tmp_path_factory.mktemp("batching_repo")
    for name in ("mlp", "add"):
        shutil.copytree(model_repo / name / "1", repo / name / "1")
    shutil.copytree(model_repo / "mlp" / "1", repo / "mlp_now" / "1")
    (repo / "mlp" / "config.json").write_text(f'{{"max_batch_size": 4, "max_queue_delay_ms": {DELAY_MS}}}')
    (repo / "mlp_now" / "config.json").write_text('{"max_batch_size": 4}')
    settings = Settings(redis_url=redis_server.url, namespace=f"b{uuid.uuid4().hex[:8]}", model_repo=str(repo))
    with LocalCluster(settings, devices=[0]) as running:
        yield running


@pytest.fixture
def client(cluster):
    with Client(cluster.settings) as c:
        yield c


def mlp_input(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((1, 64)).astype(np.float32)}


def reference(cluster, x):
    session = ort.InferenceSession(f"{cluster.settings.model_repo}/mlp/1/model.onnx")
    return session.run(None, x)[0]


def test_a_full_batch_runs_at_once(client, cluster):
    feeds = [mlp_input(i) for i in range(4)]
    jobs = [client.submit("mlp", f) for f in feeds]  # four messages
    for job, f in zip(jobs, feeds, strict=True):
        details = job.details(30)
        assert details.batch_jobs == 4
        np.testing.assert_allclose(details.outputs["y"], reference(cluster, f), rtol=1e-5, atol=1e-6)


def test_a_partial_batch_runs_once_its_first_job_waited_the_delay(client, cluster):
    jobs = [client.submit("mlp", mlp_input(i)) for i in range(2)]
    results = [job.details(30) for job in jobs]
    assert [r.batch_jobs for r in results] == [2, 2]
    # Not run before its delay. A lower bound only: a slow machine makes the wait longer, never shorter.
    assert results[0].timings["queued_ms"] >= DELAY_MS * 0.95


def test_a_job_of_a_model_that_does_not_batch_is_not_held(client, cluster, raw_redis):
    """add's message runs the buffer at once, with the mlp job that waited in it: both are
    answered by the same run (the run id each job's answer recorded), not mlp's after its delay."""
    waiting = client.submit("mlp", mlp_input(7))
    add = client.submit("add", {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)})
    assert add.details(30).batch_jobs == 1 and waiting.details(30).batch_jobs == 1
    ns = cluster.settings.namespace
    answered = {raw_redis.hget(keys.job_runs(ns, job.id), "answered") for job in (waiting, add)}
    assert len(answered) == 1 and None not in answered


def test_every_gathered_message_is_acknowledged(client, cluster, raw_redis):
    jobs = [client.submit("mlp", mlp_input(i)) for i in range(8)]
    assert [job.details(30).batch_jobs for job in jobs] == [4] * 8
    # The acks go out just after the answers: wait for kombu's unacked index to empty.
    index = Books.of(celery_config(cluster.settings)["broker_transport_options"]).index
    raw_redis.config_set("notify-keyspace-events", "Kz")
    with raw_redis.pubsub() as sub:
        sub.subscribe(f"__keyspace@0__:{index}")
        while raw_redis.zcard(index):
            sub.get_message(timeout=1.0)
    assert raw_redis.llen(keys.shared_queue(cluster.settings.namespace)) == 0


def test_without_a_delay_the_jobs_waiting_together_run_together(client, cluster):
    """Queued while the worker is away, three messages are taken by one claim and run as one
    execution; the fourth, alone in the queue, runs alone."""
    cluster.stop_worker(0)
    feeds = [mlp_input(i) for i in range(4)]
    jobs = [client.submit("mlp_now", f) for f in feeds[:3]]
    cluster.start_workers([0])
    results = [job.details(30) for job in jobs]
    assert [r.batch_jobs for r in results] == [3, 3, 3]
    for details, f in zip(results, feeds[:3], strict=True):
        np.testing.assert_allclose(details.outputs["y"], reference(cluster, f), rtol=1e-5, atol=1e-6)
    assert client.submit("mlp_now", feeds[3]).details(30).batch_jobs == 1
