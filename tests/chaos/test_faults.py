"""What aclq guarantees under faults (docs/reliability.md), shown on real processes."""

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import onnxruntime as ort

from producer import Client, keys
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
            assert client._redis.llen(keys.job_reply(ns, job.id)) == 1  # one visible answer
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


def test_redis_restart_mid_batch_names_every_failure(settings, server, model_repo, tmp_path):
    rng = np.random.default_rng(1)
    source = tmp_path / "in"
    source.mkdir()
    for i in range(300):
        np.save(source / f"{i:03d}.npy", rng.standard_normal((1, 64)).astype(np.float32))
    with LocalCluster(settings, devices=[0, 1]), Client(settings) as client:
        restarted = threading.Event()

        def restart_when_busy() -> None:
            while len(list((tmp_path / "out").glob("*.npz"))) < 50:
                time.sleep(0.01)
            server.restart()  # AOF on: queues, payloads and answers survive the restart
            restarted.set()

        threading.Thread(target=restart_when_busy, daemon=True).start()
        summary = client.batch("mlp", source, tmp_path / "out", window=8, retries=3)
        assert restarted.is_set()
    written = {p.name for p in (tmp_path / "out").glob("*.npz")}
    assert summary.done + summary.failed == 300  # nothing silently dropped
    assert {f.item.replace(".npy", ".npz") for f in summary.failures} == {f"{i:03d}.npz" for i in range(300)} - written
    assert summary.done == len(written)


def test_sigterm_lets_the_current_job_finish(settings):
    x = np.full((64, 64), 0.01, np.float32)
    with LocalCluster(settings, devices=[0]) as cluster, Client(settings) as client:
        client.infer("slow", {"x": x, "iterations": np.array(1)})
        job = client.submit("slow", {"x": x, "iterations": np.array(500_000)})  # about 2 s
        wait_until_running(client, job)
        cluster.workers[0].send_signal(signal.SIGTERM)
        assert job.result(60)["y"].shape == (64, 64)
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
