"""`aclq perf` (ais_bench's pure-performance mode) through real workers."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from producer import JobFailed
from producer.perf import run_perf


def test_perf_summarises_every_measured_job_per_device(client):
    x = np.random.default_rng(1).standard_normal((4, 64)).astype(np.float32)
    summary = run_perf(client, "mlp", {"x": x}, loop=40, warmup=4, window=8)
    assert (summary.loop, summary.warmup, summary.rows) == (40, 4, 4)
    assert set(summary.devices) <= {"0", "1"} and sum(d.jobs for d in summary.devices.values()) == 40
    for spread in (summary.compute_ms, summary.latency_ms, *(d.compute_ms for d in summary.devices.values())):
        assert 0 < spread.min <= spread.median <= spread.p90 <= spread.p99 <= spread.max
    assert summary.compute_ms.mean <= summary.latency_ms.mean  # execution is part of the latency
    # rows over the run's time, which the summary shows to the millisecond (a run of ~40 ms
    # moves by up to 1.3 % in that rounding: failed CI at rel=0.01)
    assert 40 * 4 / (summary.elapsed_s + 0.0005) <= summary.throughput <= 40 * 4 / (summary.elapsed_s - 0.0005)
    for device in summary.devices.values():
        assert device.compute_throughput == pytest.approx(1000 * 4 / device.compute_ms.mean)
    assert "Performance Summary" in summary.render() and "percentile(99%)" in summary.render()


def test_perf_stops_at_a_failing_job_with_its_acl_code(client):
    with pytest.raises(JobFailed, match="100017"):
        run_perf(client, "mlp", {"x": np.zeros((1, 63), np.float32)}, loop=5, warmup=0)


def test_perf_command_generates_inputs_of_the_shape_given(cluster):
    env = {**os.environ, **cluster.settings.to_env()}
    command = [sys.executable, "-m", "producer.cli", "perf", "--model", "mlp", "--shape", "x=2,64",
               "--loop", "12", "--warmup", "2", "--json"]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["loop"], summary["rows"]) == (12, 2)
    assert sum(d["jobs"] for d in summary["devices"].values()) == 12
    missing = subprocess.run(
        [sys.executable, "-m", "producer.cli", "perf", "--model", "mlp"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "--shape NAME=D0,D1" in missing.stderr
