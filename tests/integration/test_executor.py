"""The worker's job executor in this process, on a real device and a real Redis."""

import logging
import os
import threading
import weakref
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from acl_core import AclError, Device, Model
from acl_core.backends.onnxruntime import OnnxRuntimeModel
from producer import Client, InputRef, JobFailed, Settings, keys, storage
from producer.connection import redis_client
from tests.messages import queued, take_queued
from tests.models import colsum
from worker.executor import Executor
from worker.models import ModelCache, ModelRepository

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


@pytest.fixture
def setup(redis_server, model_repo, namespace):
    settings = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo))
    with Device(0) as device, Client(settings) as client:
        server = redis_client(settings)
        executor = Executor(settings, device, ModelCache(device, ModelRepository(model_repo), 1 << 30), server, "test")
        yield client, executor, device
        server.close()


def test_nothing_leaks_across_good_and_bad_jobs(setup):
    client, executor, device = setup
    jobs = []
    for i in range(60):
        inputs = GOOD if i % 3 else {"a": GOOD["a"]}  # every third job lacks an input
        jobs.append(client.submit("add", inputs))
        executor.run(queued(client, jobs[-1].id))
    jobs.append(client.submit("nonzero", {"x": np.eye(4, dtype=np.float32)}))
    executor.run(queued(client, jobs[-1].id))
    stats = device.memory()
    assert stats.in_use == 0 and stats.live == 0 and stats.peak > 0  # every output was freed
    assert (executor.counters.done, executor.counters.failed) == (41, 20)
    assert "done=41 failed=20" in repr(executor)
    with pytest.raises(JobFailed):
        jobs[0].result(1)
    assert jobs[1].result(1)["c"].sum() == 12


def test_a_redelivered_job_is_answered_once(setup):
    """Run the same job twice (as after a lost worker): the first answer stays the only one, and
    the only one noticed in the client's inbox (no reader here takes it)."""
    client, executor, _ = setup
    inbox = client._core.inbox_for(os.getpid())
    client._core.waits = 1  # as while another wait is in progress: the job names the inbox
    job = client.submit("add", GOOD)
    ns = client.settings.namespace
    message = queued(client, job.id)
    executor.run(message)
    executor.run(message)  # redelivered
    assert client._redis.llen(keys.job_reply(ns, job.id)) == 1
    assert executor.counters.done == 1
    assert not client._redis.keys(keys.job_staging(ns, job.id, "*"))  # the second run's result was dropped
    answer = client._redis.lindex(keys.job_reply(ns, job.id), 0)
    assert client._redis.lrange(inbox.key, 0, -1) == [job.id.encode(), answer]


def test_a_job_redelivered_after_its_result_was_read_is_not_answered_again(setup, caplog):
    """The wait took the reply (a result is delivered once), so only the job's state says it was
    answered: a second run's answer is dropped, not put in place for nobody."""
    client, executor, _ = setup
    job = client.submit("add", GOOD)
    ns = client.settings.namespace
    message = queued(client, job.id)
    executor.run(message)
    assert job.result(1)["c"].sum() == 12
    assert not client._redis.exists(keys.job_reply(ns, job.id))
    # A second run that claimed the job before the first answered (its claim saw it running):
    # it executes, and its answer reaches the finish script after the result was read.
    claim_all = executor._claim_all
    executor._claim_all = lambda jobs, run: [replace(c, final=None) for c in claim_all(jobs, run)]
    with caplog.at_level(logging.WARNING, logger="worker.executor"):
        executor.run(message)
    assert not client._redis.exists(keys.job_reply(ns, job.id))
    assert not client._redis.keys(keys.job_staging(ns, job.id, "*"))
    assert client._redis.get(keys.job_state(ns, job.id)) == b"done"
    assert "answered or cancelled meanwhile" in caplog.text


def test_expired_payload_is_answered(setup):
    client, executor, _ = setup
    job = client.submit("add", GOOD)
    client._redis.delete(keys.job_state(client.settings.namespace, job.id))  # as when its records expire
    executor.run(queued(client, job.id))
    with pytest.raises(JobFailed, match="no payload: expired or never submitted"):
        job.result(1)


def test_too_large_outputs_are_answered_with_the_limit_error(setup, redis_server, model_repo, namespace):
    """NonZero turns 1,000,000 bytes of input into 4,000,000 of output: past a 1 MiB limit."""
    client, _, device = setup
    tight = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo), max_message_mb=1)
    server = redis_client(tight)
    executor = Executor(tight, device, ModelCache(device, ModelRepository(model_repo), 1 << 30), server, "tight")
    job = client.submit("nonzero", {"x": np.ones((500, 500), np.float32)})
    executor.run(queued(client, job.id))
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
        executor.run(queued(client, job.id))
    np.testing.assert_array_equal(job.result(1)["indices"], np.nonzero(x))
    after = device.memory()
    assert (after.in_use, after.live) == (baseline.in_use, baseline.live) == (0, 0)
    assert after.peak > 0 and executor.counters.done == 5000


def test_one_message_of_many_jobs_is_claimed_and_answered_in_two_round_trips(setup):
    client, executor, _ = setup
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    jobs = [client.submit("add", {"a": a * i, "b": a}) for i in range(8)]
    jobs.insert(3, client.submit("add", {"a": a}))  # a bad job amid good ones fails alone
    messages = take_queued(client)
    executor.run([(jobs[0].id, messages[jobs[0].id])])  # answered before: in the message again, it is skipped
    real_round_trip, visits = executor._round_trip, []
    executor._round_trip = lambda commands: visits.append(1) or real_round_trip(commands)
    executor.run([(job.id, messages[job.id]) for job in jobs])
    assert len(visits) == 2  # one claim, one answer, for nine jobs
    for i, job in enumerate(j for j in jobs if j is not jobs[3]):
        np.testing.assert_array_equal(job.result(1)["c"], a * i + a)
    with pytest.raises(JobFailed) as info:
        jobs[3].result(1)
    assert info.value.code == 100017
    assert jobs[0].status().value == "done" and executor.counters.done == 8


def mlp_rows(rows: int, seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((rows, 64)).astype(np.float32)}


def test_compatible_jobs_run_as_one_execution_and_each_gets_its_own_rows(setup, model_path):
    client, executor, device = setup
    feeds = [mlp_rows(1 + i % 3, i) for i in range(10)]
    jobs = [client.submit("mlp", f) for f in feeds]
    bad = client.submit("mlp", {"x": np.zeros((1, 63), np.float32)})  # trailing dims the model refuses
    other = client.submit("mlp", feeds[0], options={"stream_sync_timeout_ms": 60_000})  # other options
    executor.run(queued(client, *[j.id for j in jobs[:5]], bad.id, other.id, *[j.id for j in jobs[5:]]))
    alone = device.load(model_path("mlp"))
    for job, f in zip(jobs, feeds, strict=True):
        details = job.details(1)
        assert details.batch_jobs == 10
        np.testing.assert_allclose(details.outputs["y"], alone.execute(f)["y"], rtol=1e-5, atol=1e-6)
    assert other.details(1).batch_jobs == 1
    with pytest.raises(JobFailed) as info:
        bad.result(1)
    assert info.value.code == 100017 and "got [1, 63]" in info.value.message
    assert device.memory().live == 0  # the batch's outputs were freed


def test_a_batch_stops_at_max_batch_size(setup):
    client, executor, _ = setup
    jobs = [client.submit("mlp", mlp_rows(16, i)) for i in range(10)]  # 160 rows, 64 a batch
    executor.run(queued(client, *[j.id for j in jobs]))
    assert [j.details(1).batch_jobs for j in jobs] == [4] * 8 + [2] * 2
    # the metrics count jobs per job and executions per execution
    sample = executor.metrics.registry.get_sample_value
    assert sample("aclq_jobs_total", {"model": "mlp", "status": "ok"}) == 10
    assert sample("aclq_execution_seconds_count", {"model": "mlp"}) == 3
    assert (sample("aclq_batch_rows_count"), sample("aclq_batch_rows_sum")) == (3, 160)


def test_a_batch_whose_outputs_do_not_split_runs_its_jobs_alone(setup, redis_server, tmp_path, namespace):
    client, _, device = setup
    (tmp_path / "colsum" / "1").mkdir(parents=True)
    onnx.save(colsum(), str(tmp_path / "colsum" / "1" / "model.onnx"))
    (tmp_path / "colsum" / "config.json").write_text('{"max_batch_size": 8, "max_queue_delay_ms": 1}')
    settings = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(tmp_path))
    server = redis_client(settings)
    executor = Executor(settings, device, ModelCache(device, ModelRepository(tmp_path), 1 << 30), server, "colsum")
    feeds = [np.full((2, 4), i, np.float32) for i in range(3)]
    jobs = [client.submit("colsum", {"x": x}) for x in feeds]
    executor.run(queued(client, *[j.id for j in jobs]))
    for job, x in zip(jobs, feeds, strict=True):
        details = job.details(1)
        assert details.batch_jobs == 1
        np.testing.assert_array_equal(details.outputs["y"], x.sum(axis=0, keepdims=True))
    server.close()


def test_an_answered_job_delivered_again_is_never_shown_running(setup):
    """The claim of a redelivered, answered job leaves its state alone: no reader ever sees it
    `running` again, and its attempt is not counted."""
    client, executor, _ = setup
    job = client.submit("add", GOOD)
    message = queued(client, job.id)
    executor.run(message)
    state_key = keys.job_state(client.settings.namespace, job.id)
    client._redis.config_set("notify-keyspace-events", "K$")
    with client._redis.pubsub() as sub:
        sub.subscribe(f"__keyspace@0__:{state_key}")
        sub.get_message(timeout=1)  # the subscription's confirmation
        executor.run(message)  # delivered again
        assert sub.get_message(timeout=0.2) is None  # no write to the state at all
    assert job.status().value == "done" and job.details(1).attempt == 1


def test_a_claim_and_an_answer_retried_after_a_lost_reply_count_once(setup, caplog):
    """A round trip whose replies were lost is sent again (executor._round_trip after a
    connection error): the attempt is counted once and the answer is not reported as a second one."""
    client, executor, _ = setup
    real = executor._round_trip
    executor._round_trip = lambda commands: real(commands) and real(commands)  # ran, then retried
    job = client.submit("add", GOOD)
    with caplog.at_level(logging.WARNING, logger="worker.executor"):
        executor.run(queued(client, job.id))
    assert client._redis.llen(keys.job_reply(client.settings.namespace, job.id)) == 1
    details = job.details(1)
    assert details.attempt == 1 and details.outputs["c"].sum() == 12
    assert "already answered" not in caplog.text


def test_a_job_whose_worker_died_mid_run_is_attempt_two(setup):
    client, executor, _ = setup
    job = client.submit("add", GOOD)
    ns = client.settings.namespace
    client._redis.set(keys.job_state(ns, job.id), "running", keepttl=True)  # as a lost worker left it
    client._redis.hset(keys.job_runs(ns, job.id), mapping={"n": 1, "run": "the-lost-run"})
    executor.run(queued(client, job.id))
    assert job.details(1).attempt == 2


def test_a_server_that_lost_the_scripts_gets_them_again(setup):
    """After a restart Redis has no scripts: the claim's and the answer's round trips load them and go on."""
    client, executor, _ = setup
    client._redis.script_flush()
    job = client.submit("add", GOOD)
    executor.run(queued(client, job.id))
    details = job.details(1)
    assert details.attempt == 1 and details.outputs["c"].sum() == 12


def test_the_next_job_by_reference_is_read_while_one_executes(setup, tmp_path, monkeypatch):
    """Jobs by reference that run alone (add does not batch): the first is read at once, then
    the reader thread reads the next job's inputs while the one before executes, one job ahead,
    never all at once, and a job's inputs are let go once it has executed; a job whose file is
    missing fails alone."""
    client, executor, _ = setup
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    for i in range(4):
        np.save(tmp_path / f"{i}.npy", a * i)
    reads: list[tuple[str, str]] = []
    second_read = threading.Event()
    real_read, real_execute = storage.read_input, Model.execute

    def read_input(at):
        reads.append((Path(at.url).stem, threading.current_thread().name))
        if Path(at.url).stem == "1":
            second_read.set()
        return real_read(at)

    during_first: list = []
    executed: list[weakref.ref] = []
    alive_at_third: list[bool] = []

    def execute(self, feeds, *args, **kwargs):
        if not during_first:
            second_read.wait(5)
            during_first.extend(reads)
        if len(executed) == 2:
            alive_at_third.append(executed[0]() is not None)
        executed.append(weakref.ref(feeds["a"]))
        return real_execute(self, feeds, *args, **kwargs)

    monkeypatch.setattr(storage, "read_input", read_input)
    monkeypatch.setattr(Model, "execute", execute)
    refs = [{"a": InputRef(str(tmp_path / f"{i}.npy")), "b": InputRef(str(tmp_path / "0.npy"))} for i in range(4)]
    refs.insert(2, {"a": InputRef(str(tmp_path / "missing.npy")), "b": InputRef(str(tmp_path / "0.npy"))})
    jobs = [client.submit("add", inputs) for inputs in refs]
    messages = take_queued(client)
    executor.run([(job.id, messages[job.id]) for job in jobs])
    assert {stem for stem, _ in during_first} == {"0", "1"}  # the next one read, not the rest
    here = threading.current_thread().name
    assert [stem for stem, thread in reads if thread == here] == ["0", "0"]  # the first job's a and b, at once
    assert all(thread.startswith("aclq-read") for _, thread in reads if thread != here)
    assert alive_at_third == [False]  # the first job's input was let go once it had executed
    for i, job in zip([0, 1, 2, 3], [j for k, j in enumerate(jobs) if k != 2]):
        np.testing.assert_array_equal(job.result(1)["c"], a * i)
    with pytest.raises(JobFailed) as info:
        jobs[2].result(1)
    assert info.value.code == 100003 and "missing.npy" in info.value.message


def test_a_job_whose_rows_split_runs_in_runs_joined_back(setup, model_path):
    """split_rows: the worker executes the job's rows in runs (worker/runs.py: the first at
    FIRST_RUN rows), each an execution in the metrics, and joins the outputs; without it a job
    of the same rows is one execution."""
    client, executor, device = setup
    feeds = mlp_rows(300, 1)
    split, whole = client.submit("mlp", feeds, split_rows=True), client.submit("mlp", feeds)
    executor.run(queued(client, split.id, whole.id))
    expected = device.load(model_path("mlp")).execute(feeds)["y"]
    np.testing.assert_allclose(split.result(1)["y"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(whole.result(1)["y"], expected, rtol=1e-5, atol=1e-6)
    sample = executor.metrics.registry.get_sample_value
    runs = sample("aclq_execution_seconds_count", {"model": "mlp"}) - 1  # less the whole job's
    assert runs >= 300 // 128 and sample("aclq_batch_rows_sum") == 600
    assert sample("aclq_batch_rows_bucket", {"le": "64.0"}) >= 1  # the first run: FIRST_RUN rows
    assert device.memory().live == 0


def test_a_split_job_whose_outputs_lack_the_rows_runs_at_once(setup, redis_server, tmp_path, namespace):
    client, _, device = setup
    (tmp_path / "colsum" / "1").mkdir(parents=True)
    onnx.save(colsum(), str(tmp_path / "colsum" / "1" / "model.onnx"))
    settings = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(tmp_path))
    server = redis_client(settings)
    executor = Executor(settings, device, ModelCache(device, ModelRepository(tmp_path), 1 << 30), server, "colsum")
    x = np.arange(400, dtype=np.float32).reshape(100, 4)
    for _ in range(2):
        job = client.submit("colsum", {"x": x}, split_rows=True)
        executor.run(queued(client, job.id))
        np.testing.assert_array_equal(job.result(1)["y"], x.sum(axis=0, keepdims=True))
    # the first job: one run, then at once; the second: at once, once (the model does not split)
    assert executor.metrics.registry.get_sample_value("aclq_execution_seconds_count", {"model": "colsum"}) == 3
    server.close()


def test_a_run_size_the_model_refuses_is_not_tried_again_and_the_job_runs_at_once(setup, monkeypatch):
    """As an .om compiled for some batch sizes only refuses the others: the job's answer is the
    same as at once, and no later job tries that size."""
    client, executor, _ = setup
    real_run = OnnxRuntimeModel.run
    calls: list[int] = []

    def no_64(self, feeds, timeout_s):
        calls.append(len(feeds["x"]))
        if len(feeds["x"]) == 64:
            raise AclError(100000, "batch size 64 is not one of the model's")
        return real_run(self, feeds, timeout_s)

    feeds = [mlp_rows(300, 4), mlp_rows(300, 5)]
    expected = [executor._models.get("mlp", None)[0].execute(f)["y"] for f in feeds]
    monkeypatch.setattr(OnnxRuntimeModel, "run", no_64)
    jobs = []
    for f in feeds:
        jobs.append(client.submit("mlp", f, split_rows=True))
        executor.run(queued(client, jobs[-1].id))
    for job, y in zip(jobs, expected, strict=True):
        np.testing.assert_allclose(job.result(1)["y"], y, rtol=1e-5, atol=1e-6)
    assert calls[:2] == [64, 300] and 64 not in calls[2:] and sum(calls[2:]) == 300
    # a job's own fault (here a bad exec option) fails it before any run, so it refuses no size
    calls.clear()
    bad = client.submit("mlp", feeds[0], split_rows=True, options={"event_sync_timeout_ms": -5})
    executor.run(queued(client, bad.id))
    with pytest.raises(JobFailed) as info:
        bad.result(1)
    assert info.value.code == 100000 and calls == []
    good = client.submit("mlp", feeds[0], split_rows=True)
    executor.run(queued(client, good.id))
    np.testing.assert_allclose(good.result(1)["y"], expected[0], rtol=1e-5, atol=1e-6)
    assert len(calls) > 1 and sum(calls) == 300


def test_a_split_job_keeps_its_timeout_across_runs_and_stops_at_a_cancel(setup, monkeypatch):
    """The job's stream timeout covers all its runs (each run's time counts against it), and a
    cancel between two runs stops the job before the next one."""
    client, executor, _ = setup
    real_run = OnnxRuntimeModel.run
    calls: list[int] = []

    def slow(self, feeds, timeout_s):
        calls.append(len(feeds["x"]))
        threading.Event().wait(0.03)  # 30 ms a run, outside the engine's own timeout
        return real_run(self, feeds, timeout_s)

    monkeypatch.setattr(OnnxRuntimeModel, "run", slow)
    job = client.submit("mlp", mlp_rows(1000, 2), split_rows=True, options={"stream_sync_timeout_ms": 50})
    executor.run(queued(client, job.id))
    with pytest.raises(JobFailed) as info:
        job.result(1)
    assert info.value.code == 507046 and "outlived its 50 ms timeout after" in info.value.message
    assert 1 <= len(calls) <= 2 and sum(calls) < 1000

    calls.clear()
    job = client.submit("mlp", mlp_rows(1000, 3), split_rows=True)

    def cancelled_after_one(self, feeds, timeout_s):
        calls.append(len(feeds["x"]))
        outputs = real_run(self, feeds, timeout_s)
        executor.cancelled(job.id)  # as the cancel listener's thread does
        return outputs

    monkeypatch.setattr(OnnxRuntimeModel, "run", cancelled_after_one)
    executor.run(queued(client, job.id))
    with pytest.raises(JobFailed) as info:
        job.result(1)
    assert len(calls) == 1 and f"cancelled after {calls[0]} of 1000 rows" in info.value.message
