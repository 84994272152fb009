"""What aclq guarantees under faults (docs/reliability.md), shown on real processes."""

import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from producer import Client, keys
from producer.batch import run_batch
from worker.local import LocalCluster

#: iterations of the slow model that keep a worker busy for about 4 s
HELD_ITERATIONS = 1_000_000


def slow_reference(model_repo, x, iterations):
    session = ort.InferenceSession(str(model_repo / "slow" / "1" / "model.onnx"))
    return session.run(None, {"x": x, "iterations": np.array(iterations)})[0]


def wait_until_running(client, job) -> None:
    """Block until a worker has started ``job``: keyspace events on its state key, no sleeps."""
    state_key = keys.job_state(client.settings.namespace, job.id)
    client._redis.config_set("notify-keyspace-events", "K$")
    with client._redis.pubsub() as sub:
        sub.subscribe(f"__keyspace@0__:{state_key}")
        while job.status().value == "queued":
            sub.get_message(timeout=1.0)
    assert job.status().value == "running", "the job finished before the fault could be injected"


def test_kill_9_a_worker_mid_batch_loses_nothing(settings, model_repo):
    """500 jobs; the worker of device 0 killed -9 while it runs a job, then restarted (as a
    supervisor would): every job answered once, correctly, the last within 60 s of the kill."""
    settings = replace(settings, visibility_timeout_s=10)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((64, 64)).astype(np.float32) * 0.1 for _ in range(500)]
    with LocalCluster(settings, devices=[0, 1]) as cluster, Client(settings) as client:
        held = client.submit("slow", {"x": xs[0], "iterations": np.array(HELD_ITERATIONS)}, device=0)
        jobs = [client.submit("slow", {"x": x, "iterations": np.array(20)}) for x in xs[1:]]
        wait_until_running(client, held)  # device 0 is inside this job now
        killed_at = time.monotonic()
        cluster.workers[0].send_signal(signal.SIGKILL)
        cluster.workers[0].wait(10)
        cluster.start_worker(0)
        results = [job.details(90) for job in [held, *jobs]]
        last_answer_s = time.monotonic() - killed_at
        ns = settings.namespace
        for job, x, result in zip([held, *jobs], xs, results):
            iterations = HELD_ITERATIONS if job is held else 20
            expected = slow_reference(model_repo, x, iterations)
            np.testing.assert_allclose(result.outputs["y"], expected, rtol=1e-5, atol=1e-6)
            # one visible answer: taken by its wait, and no later run's answer put in its place
            assert not client._redis.exists(keys.job_reply(ns, job.id))
            assert client._redis.get(keys.job_state(ns, job.id)) == b"done"
        assert last_answer_s < 60
        assert results[0].attempt == 2 and results[0].device == 0  # it came back, to its device


def test_a_long_job_is_not_run_twice_when_it_outlives_the_visibility_timeout(settings, model_repo):
    settings = replace(settings, visibility_timeout_s=2)
    x = np.full((64, 64), 0.01, np.float32)
    with LocalCluster(settings, devices=[0, 1]), Client(settings) as client:
        client.infer("slow", {"x": x, "iterations": np.array(1)})  # loaded
        started = time.monotonic()
        result = client.submit("slow", {"x": x, "iterations": np.array(2_000_000)}).details(120)
        assert time.monotonic() - started > 3 * settings.visibility_timeout_s  # it did outlive it
        assert result.attempt == 1  # no second worker picked it up while it ran


def test_a_message_claimed_with_a_long_job_is_not_handed_out_while_it_waits(settings, model_repo):
    """A worker whose repository batches takes several waiting messages in one claim; the first
    runs a job that outlives the visibility timeout while the second waits, undelivered, behind
    it. Its lease is renewed from the claim: the idle worker started meanwhile never gets it."""
    settings = replace(settings, visibility_timeout_s=2)
    x = np.full((64, 64), 0.01, np.float32)
    with LocalCluster(settings, devices=[]) as cluster, Client(settings) as client:
        long = client.submit("slow", {"x": x, "iterations": np.array(2_000_000)})
        short = client.submit("slow", {"x": x, "iterations": np.array(1)})
        cluster.start_worker(0)  # prefetch 64 (mlp batches): one claim takes both messages
        wait_until_running(client, long)
        cluster.start_worker(1)  # idle: it would take a lapsed message at once
        cluster.wait_ready(client._redis, 2)
        long_result, short_result = long.details(120), short.details(120)
        assert long_result.timings["exec_ms"] > 3000 * settings.visibility_timeout_s  # it did outlive it
        assert (short_result.device, short_result.attempt) == (0, 1)  # it waited for its worker
        assert short_result.timings["queued_ms"] > long_result.timings["exec_ms"]


def test_redis_restart_mid_batch_names_every_failure(settings, server, model_repo, tmp_path):
    rng = np.random.default_rng(1)
    source = tmp_path / "in"
    source.mkdir()
    for i in range(300):
        np.save(source / f"{i:03d}.npy", rng.standard_normal((1, 64)).astype(np.float32))
    with LocalCluster(settings, devices=[0, 1]), Client(settings) as client:
        summaries = []
        batch = threading.Thread(
            target=lambda: summaries.append(run_batch(client, "mlp", source, tmp_path / "out", window=8, retries=3))
        )
        batch.start()
        while len(list((tmp_path / "out").glob("*.npz"))) < 50:
            time.sleep(0.01)
        # From this thread: a server dies with the thread that started it (its parent-death signal).
        server.restart()  # AOF on: queues, payloads and answers survive the restart
        batch.join(240)
    (summary,) = summaries
    written = {p.name for p in (tmp_path / "out").glob("*.npz")}
    assert summary.done + summary.failed == 300  # nothing silently dropped
    assert {f.item.replace(".npy", ".npz") for f in summary.failures} == {f"{i:03d}.npz" for i in range(300)} - written
    assert summary.done == len(written)


def test_sigterm_lets_the_current_job_finish(settings, model_repo):
    """SIGTERM while the worker is inside a job (held there by a fail point, so the signal
    cannot come after the job): the job finishes and is answered, then the worker exits 0."""
    x = np.full((64, 64), 0.01, np.float32)
    with LocalCluster(settings, devices=[]) as cluster, Client(settings) as client:
        cluster.start_worker(0, env={"ACLQ_FAILPOINT": "execute"})
        cluster.wait_ready(client._redis, 1)
        job = client.submit("slow", {"x": x, "iterations": np.array(1000)})
        assert client._redis.blpop([keys.failpoint(settings.namespace, "execute")], timeout=60)
        assert job.status().value == "running"
        cluster.workers[0].send_signal(signal.SIGTERM)
        client._redis.lpush(keys.failpoint_release(settings.namespace, "execute"), 1)
        np.testing.assert_allclose(job.result(60)["y"], slow_reference(model_repo, x, 1000), rtol=1e-5, atol=1e-6)
        assert cluster.workers[0].wait(60) == 0


def test_a_device_that_cannot_be_bound_exits_non_zero(settings):
    env = {**os.environ, **settings.to_env(), "ACLQ_DEVICE_COUNT": "2"}
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--device", "5", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3
    assert "device 5 cannot be bound: [107001 ACL_ERROR_RT_INVALID_DEVICEID]" in done.stderr


def test_sigkill_while_gathering_loses_no_job(settings, model_repo, tmp_path):
    """The loss of issue 13: batching on (16 rows, 20 ms), two workers, 400 one-row jobs from 16
    threads, worker 0 killed -9 when about 100 are answered. Before the atomic claim one job in
    most runs was never answered: its message, popped by a BRPOP that was outstanding while the
    worker ran a batch, died with the worker."""
    repo = tmp_path / "repo"
    shutil.copytree(model_repo / "mlp" / "1", repo / "mlp" / "1")
    (repo / "mlp" / "config.json").write_text('{"max_batch_size": 16, "max_queue_delay_ms": 20}')
    settings = replace(settings, model_repo=str(repo), visibility_timeout_s=2)
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((1, 64)).astype(np.float32) for _ in range(400)]
    session = ort.InferenceSession(str(repo / "mlp" / "1" / "model.onnx"))
    answered, lock, killed = [0], threading.Lock(), threading.Event()
    with LocalCluster(settings, devices=[0, 1]) as cluster, Client(settings) as client:

        def one(x: np.ndarray) -> np.ndarray:
            outputs = client.submit("mlp", {"x": x}).result(60)
            with lock:
                answered[0] += 1
                if answered[0] == 100:
                    cluster.workers[0].send_signal(signal.SIGKILL)
                    killed.set()
            return outputs["y"]

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, xs))  # a lost job raises JobTimeout here
    assert killed.is_set()
    for x, y in zip(xs, results, strict=True):
        np.testing.assert_allclose(y, session.run(None, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_a_worker_that_stops_by_itself_exits_non_zero(settings):
    """A bug that ends the consumer (here: the claim raises) must not look like a clean exit."""
    env = {**os.environ, **settings.to_env()}
    bug = (
        "import producer.transport as t\n"
        "def claim(self, queues, limit): raise RuntimeError('an injected bug in the consumer')\n"
        "t.Channel._claim = claim\n"
        "from producer.settings import Settings\n"
        "from worker.main import run_worker\n"
        "run_worker(Settings.from_env(device=0), 'WARNING', quiet=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", bug], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "an injected bug in the consumer" in done.stderr


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


@pytest.mark.parametrize("command", ["up", "batch"])
def test_nothing_outlives_aclq_killed_with_sigkill(command, settings, tmp_path):
    """`aclq up` and `aclq batch` on the embedded default, killed -9 mid-run (an OOM kill, a
    closed terminal): their private server and both workers end too."""
    env = {k: v for k, v in os.environ.items() if k != "ACLQ_REDIS_URL"}
    env.update(ACLQ_MODEL_REPO=settings.model_repo, ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT="2")
    aclq = str(Path(sys.executable).with_name("aclq"))
    out = tmp_path / "out"
    if command == "up":
        argv = [aclq, "up", "--devices", "2"]
    else:  # slow jobs, so that it is killed mid-run
        np.save(tmp_path / "x.npy", np.full((64, 64), 0.01, np.float32))
        np.save(tmp_path / "n.npy", np.array(200_000))
        manifest = tmp_path / "manifest.jsonl"
        manifest.write_text("".join(f'{{"id": "{i}", "x": "x.npy", "iterations": "n.npy"}}\n' for i in range(40)))
        argv = [aclq, "batch", "--model", "slow", "--input", str(manifest), "--output", str(out)]
    parent = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert parent.stdout is not None
    if command == "up":
        for line in parent.stdout:
            if line.startswith("aclq up:"):  # every worker is ready
                break
    else:
        deadline = time.monotonic() + 120
        while not list(out.glob("*.npz")) and time.monotonic() < deadline:
            time.sleep(0.05)  # the batch is under way once its first output is written
        assert list(out.glob("*.npz")), "the batch never got going"
    spawned = children(parent.pid)
    assert len(spawned) == 3  # the server and two workers
    handles = [os.pidfd_open(pid) for pid in spawned]  # readable once the process has ended
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    parent.stdout.close()
    deadline = time.monotonic() + 60
    for handle in handles:
        ended = select.select([handle], [], [], max(deadline - time.monotonic(), 0))[0]
        assert ended, f"a child outlived aclq {command}"
        os.close(handle)
