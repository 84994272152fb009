"""The chaos matrix: every delivery path under every fault, on real worker processes and a real
Redis (docs/reliability.md has the table of outcomes).

Each cell runs two workers on the shared queue: the victim (device 0), started with a fail point
(worker/failpoints.py) where the fault needs one, and a helper (device 1) that carries on. Every
job must be answered exactly once (one answer, taken by its wait) with correct outputs, and the last
answer must come within the visibility timeout plus one sweep of the fault (plus SLACK_S for
this 2-core machine).
"""

import asyncio
import contextlib
import shutil
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import redis

from producer import (
    AsyncClient,
    BrokerConnectionError,
    Client,
    InputRef,
    JobFailed,
    JobNotFound,
    Settings,
    keys,
)
from producer.client import WAIT_SLICE_S
from producer.codes import ACL_ERROR_INVALID_PARAM
from producer.dispatch import RESTORE_INTERVAL_S
from tests import waits
from tests.models import colsum
from worker.embedded import RedisServer
from worker.local import LocalCluster

#: shortest visibility timeout aclq accepts: a killed worker's messages come back after it
VISIBILITY_S = 2
#: room for a 2-core machine running two workers, Redis and the test: start-up of nothing,
#: just the helper's claim, execution and answer of what came back
SLACK_S = 6
JOBS = 48
#: jobs per message on the several-jobs-a-message path
CHUNK = 8

#: path -> model (how its jobs are sent: send()); every path's jobs are small, so inline,
#: but for large_answers'
PATHS = {
    "one_job_a_message": "mlp",
    "several_jobs_a_message": "mlp",
    "gathered_batch": "mlp_batched",
    "batch_falls_back": "colsum",
    "claim_check": "mlp",  # one job a message, its payload under its own key (ACLQ_INLINE_MAX_KB=0)
    "by_reference": "mlp",  # one job a message; the worker reads its input file and writes its outputs
    "split_rows": "mlp",  # one job of 200-odd rows a message, which the worker executes in runs
    # one job a message, each answered through the client's inbox: sent while another wait is on
    "answers_by_inbox": "mlp",
    # one job a message whose answer is over NOTICE_ANSWER_MAX: the string `out`, a marker in its reply
    "large_answers": "identity_float32",
}
#: rows of each job on the split_rows path: more than a run takes at first (worker/runs.py)
SPLIT_ROWS = 200
#: rows of each job on the large_answers path: 256 bytes a row, an answer over 64 KiB
LARGE_ROWS = 300
#: fault -> the victim's fail point (None: the fault needs none)
FAULTS = {
    "sigkill_idle": None,
    "sigkill_holding": "hold",
    "sigkill_executing": "execute",
    "sigkill_answering": "answer",
    "redis_restart": "execute",  # restarted while the victim holds claimed jobs
    "sigterm_executing": "execute",
}


@pytest.fixture(scope="module")
def matrix_repo(model_repo, tmp_path_factory):
    """mlp (no batching), mlp_batched (8 rows, 100 ms), colsum (asks to batch; never splits) and
    identity_float32."""
    repo = tmp_path_factory.mktemp("matrix_repo")
    shutil.copytree(model_repo / "mlp" / "1", repo / "mlp" / "1")
    shutil.copytree(model_repo / "mlp" / "1", repo / "mlp_batched" / "1")
    shutil.copytree(model_repo / "identity_float32" / "1", repo / "identity_float32" / "1")
    (repo / "colsum" / "1").mkdir(parents=True)
    onnx.save(colsum(), str(repo / "colsum" / "1" / "model.onnx"))
    for name in ("mlp_batched", "colsum"):
        (repo / name / "config.json").write_text('{"max_batch_size": 8, "max_queue_delay_ms": 100}')
    return repo


def inputs(model: str, seed: int, rows: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    width = 4 if model == "colsum" else 64
    return {"x": rng.standard_normal((rows + seed % 2, width)).astype(np.float32)}


def expected(repo, model: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
    if model == "colsum":
        return feeds["x"].sum(axis=0, keepdims=True)
    return ort.InferenceSession(str(repo / model / "1" / "model.onnx")).run(None, feeds)[0]


def send(client: Client, path: str, model: str, feeds: list[dict[str, np.ndarray]], files: Path) -> list[Any]:
    if path == "by_reference":
        jobs = []
        for i, f in enumerate(feeds):
            np.save(files / f"in{i}.npy", f["x"])
            jobs.append(client.submit(model, {"x": InputRef(str(files / f"in{i}.npy"))}, output_to=str(files / f"{i}")))
        return jobs
    if path == "several_jobs_a_message":
        return [job for i in range(0, len(feeds), CHUNK) for job in client.submit_many(model, feeds[i : i + CHUNK])]
    return [client.submit(model, f, split_rows=path == "split_rows") for f in feeds]


def wait_through_outages(job: Any, timeout_s: float) -> Any:
    """A caller's wait that lives through a Redis restart: BrokerConnectionError means "try again"."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return job.details(max(deadline - time.monotonic(), 0.1))
        except BrokerConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def faulted(
    server: Any,
    r: redis.Redis,
    settings: Settings,
    victim: Any,
    fault: str,
    point: str | None,
    jobs: list[Any],
    faulted_at: float,
) -> tuple[list[Any], float]:
    """The fault at the victim's fail point (if it has one), then every job's wait: the results,
    and the seconds from the fault to the last answer."""
    if point is not None:
        reached(r, settings.namespace, point)
        faulted_at = time.monotonic()
        if fault == "sigterm_executing":
            victim.send_signal(signal.SIGTERM)  # warm shutdown: finish what it claimed
        elif fault == "redis_restart":
            server.restart()  # AOF on: queues, payloads, leases and answers survive
        else:
            victim.send_signal(signal.SIGKILL)
        if not fault.startswith("sigkill"):
            r.lpush(keys.failpoint_release(settings.namespace, point), 1)
    results = [wait_through_outages(job, 120) for job in jobs]
    return results, time.monotonic() - faulted_at


def reached(r: redis.Redis, ns: str, point: str) -> None:
    """Block until the victim stops at its fail point (it pushes its pid there)."""
    assert r.blpop([keys.failpoint(ns, point)], timeout=60), f"the victim never reached fail point {point!r}"


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("path", PATHS)
def test_every_job_is_answered_exactly_once(path, fault, server, matrix_repo, monkeypatch, tmp_path):
    monkeypatch.setenv("ACLQ_PROVIDER", "cpu")
    monkeypatch.setenv("ACLQ_DEVICE_COUNT", "2")
    settings = Settings(
        redis_url=server.url, model_repo=str(matrix_repo), namespace="matrix", visibility_timeout_s=VISIBILITY_S
    )
    if path == "claim_check":
        settings = replace(settings, inline_max_kb=0)
    model, point = PATHS[path], FAULTS[fault]
    rows = {"split_rows": SPLIT_ROWS, "large_answers": LARGE_ROWS}.get(path, 1)
    feeds = [inputs(model, i, rows) for i in range(JOBS)]
    r = redis.Redis.from_url(server.url)
    with LocalCluster(settings, devices=[]) as cluster, Client(settings) as client:
        cluster.start_worker(0, env={"ACLQ_FAILPOINT": point} if point else None)
        cluster.start_worker(1)
        cluster.wait_ready(r, 2)
        victim = cluster.workers[0]
        if fault == "sigkill_idle":
            victim.send_signal(signal.SIGKILL)  # blocked on Redis, waiting for a doorbell
            victim.wait(10)
        faulted_at = time.monotonic()
        with contextlib.ExitStack() as waiting:
            if path == "answers_by_inbox":  # jobs sent while another wait is on name the inbox
                unserved = client.submit("mlp", inputs("mlp", 0), device=5)
                waiting.enter_context(waits.another_wait(client, unserved, lambda job: wait_through_outages(job, 300)))
            jobs = send(client, path, model, feeds, tmp_path)
            assert {job._notified for job in jobs} == {path == "answers_by_inbox"}
            results, recovered_s = faulted(server, r, settings, victim, fault, point, jobs, faulted_at)
        if fault == "sigterm_executing":
            assert victim.wait(60) == 0  # a requested shutdown exits 0
        for i, (job, f, result) in enumerate(zip(jobs, feeds, results, strict=True)):
            y = np.load(tmp_path / f"{i}.npz")["y"] if path == "by_reference" else result.outputs["y"]
            np.testing.assert_allclose(y, expected(matrix_repo, model, f), rtol=1e-5, atol=1e-6)
            # one visible answer: taken by its wait (delivered once), and no later run's answer
            # put in its place
            assert not r.exists(keys.job_reply(settings.namespace, job.id), keys.job_out(settings.namespace, job.id))
            assert r.get(keys.job_state(settings.namespace, job.id)) == b"done"
            assert r.hget(keys.job_runs(settings.namespace, job.id), "answered")  # answered by one run
        if path == "batch_falls_back":
            assert {result.batch_jobs for result in results} == {1}
        print(f"\nCHAOS {path} {fault}: last answer {recovered_s:.1f} s after the fault")
        assert recovered_s < VISIBILITY_S + RESTORE_INTERVAL_S + SLACK_S
    r.close()


def test_redis_restart_without_persistence_names_every_lost_job(matrix_repo, monkeypatch, tmp_path):
    """Without AOF a restart loses queues, payloads and states: nothing can be redelivered, so
    each lost job must end for its caller in a clear error, soon, never a wait without end."""
    monkeypatch.setenv("ACLQ_PROVIDER", "cpu")
    monkeypatch.setenv("ACLQ_DEVICE_COUNT", "2")
    with RedisServer(appendonly=False) as server:
        settings = Settings(redis_url=server.url, model_repo=str(matrix_repo), namespace="volatile")
        feeds = [inputs("mlp_batched", i) for i in range(JOBS)]
        with LocalCluster(settings, devices=[0]), Client(settings) as client:
            jobs = send(client, "one_job_a_message", "mlp_batched", feeds, tmp_path)
            server.restart()  # with jobs queued, gathering, running and answered
            outcomes, slowest_s = [], 0.0
            for job in jobs:
                started = time.monotonic()
                try:
                    outcomes.append(wait_through_outages(job, 60))
                except (JobNotFound, JobFailed) as exc:
                    outcomes.append(exc)
                slowest_s = max(slowest_s, time.monotonic() - started)
    for outcome in outcomes:
        # answered before the restart, gone with it, or (a message a worker held across it)
        # answered for want of its payload
        assert (
            not isinstance(outcome, Exception)
            or isinstance(outcome, JobNotFound)
            or (isinstance(outcome, JobFailed) and outcome.code == ACL_ERROR_INVALID_PARAM)
        ), outcome
    assert any(isinstance(o, JobNotFound) for o in outcomes)
    print(
        f"\nCHAOS no-persistence restart: {sum(isinstance(o, Exception) for o in outcomes)} of {JOBS} named lost, "
        f"each within {slowest_s:.1f} s of its caller's wait"
    )
    assert slowest_s < WAIT_SLICE_S + SLACK_S


def test_a_lost_job_is_named_to_a_caller_already_waiting(matrix_repo, monkeypatch):
    """A caller blocked on a result when Redis restarts without persistence ends in JobNotFound
    within a few seconds, not in a wait without end (redis-py reconnects and blocks again)."""
    with RedisServer(appendonly=False) as server:
        settings = Settings(redis_url=server.url, model_repo=str(matrix_repo), namespace="volatile")
        r = redis.Redis.from_url(server.url)
        with Client(settings) as client:
            job = client.submit("mlp", inputs("mlp", 0))  # no worker: it stays queued
            outcome: list[BaseException] = []

            def wait() -> None:
                try:
                    job.details()  # no timeout: only the job's end ends this wait
                except BaseException as exc:  # noqa: B036 - the outcome is what is asserted
                    outcome.append(exc)

            waiter = threading.Thread(target=wait)
            waiter.start()
            deadline = time.monotonic() + 30
            while not waits.blocked_on_reply(r) and time.monotonic() < deadline:
                time.sleep(0.01)  # until the waiter blocks on the reply (Redis has no event for it)
            server.restart()  # from this thread: the server dies with the thread that started it
            restarted_at = time.monotonic()
            waiter.join(30)
        r.close()
    assert not waiter.is_alive(), "the caller still waits for a job Redis lost"
    assert len(outcome) == 1 and isinstance(outcome[0], (JobNotFound, BrokerConnectionError)), outcome
    print(f"\nCHAOS no-persistence restart: a waiting caller told in {time.monotonic() - restarted_at:.1f} s")


def test_the_async_client_names_a_job_redis_lost(matrix_repo):
    """AsyncClient.result, waiting when Redis restarts without persistence: a clear error soon,
    never a wait without end."""
    with RedisServer(appendonly=False) as server:
        settings = Settings(redis_url=server.url, model_repo=str(matrix_repo), namespace="volatile")
        r = redis.Redis.from_url(server.url)

        async def wait_across_a_restart() -> BaseException | None:
            async with AsyncClient(settings) as client:
                job = await client.submit("mlp", inputs("mlp", 0))  # no worker: it stays queued
                waiting = asyncio.ensure_future(job.result())
                while not waits.blocked_on_reply(r):
                    await asyncio.sleep(0.01)  # until the wait blocks on the reply
                server.restart()  # (blocking, in this thread: the server lives with this thread)
                try:
                    await waiting
                except (JobNotFound, BrokerConnectionError) as exc:
                    return exc
            return None

        started = time.monotonic()
        outcome = asyncio.run(asyncio.wait_for(wait_across_a_restart(), 30))
        r.close()
    # Named either way: the job is gone, or the broker blip (the wait's connection died with the
    # old server), which a caller retries into JobNotFound.
    assert isinstance(outcome, JobNotFound | BrokerConnectionError), outcome
    print(
        f"\nCHAOS no-persistence restart: an async caller told {type(outcome).__name__} in "
        f"{time.monotonic() - started:.1f} s"
    )
    assert time.monotonic() - started < WAIT_SLICE_S + SLACK_S
