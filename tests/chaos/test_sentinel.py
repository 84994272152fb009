"""Redis Sentinel: a failover under a running batch, on real processes (a primary, a replica and
three sentinels, tests/sentinel.py), and a bad Sentinel configuration refused at start-up."""

import asyncio
import os
import subprocess
import sys
import threading
import time

import numpy as np
import onnxruntime as ort
import pytest

from producer import AsyncClient, Client, ConfigError, Settings
from producer.batch import run_batch
from producer.connection import redis_client
from tests.sentinel import MASTER_NAME, SentinelGroup, SentinelServer
from worker.embedded import free_port
from worker.local import LocalCluster

ITEMS = 300


def test_a_batch_lives_through_a_failover(model_repo, tmp_path, monkeypatch):
    """SIGKILL of the primary mid-batch: the sentinels promote the replica, workers and client
    follow it by themselves, and every item ends written (correct) or named lost."""
    monkeypatch.setenv("ACLQ_PROVIDER", "cpu")
    monkeypatch.setenv("ACLQ_DEVICE_COUNT", "2")
    rng = np.random.default_rng(7)
    source = tmp_path / "in"
    source.mkdir()
    feeds = {f"{i:03d}": rng.standard_normal((1, 64)).astype(np.float32) for i in range(ITEMS)}
    for name, x in feeds.items():
        np.save(source / f"{name}.npy", x)
    output = tmp_path / "out"
    with SentinelGroup() as group:
        settings = Settings(
            redis_url=group.url(), model_repo=str(model_repo), namespace="failover", visibility_timeout_s=2
        )
        old_primary = group.primary_port()
        with LocalCluster(settings, devices=[0, 1]) as cluster, Client(settings) as client:
            summaries = []
            batch = threading.Thread(
                target=lambda: summaries.append(run_batch(client, "mlp", source, output, window=8))
            )
            batch.start()
            while len(list(output.glob("*.npz"))) < 50:
                time.sleep(0.01)
            with group.switch_watch() as failover:
                group.primary.kill()
            batch.join(240)
            assert not batch.is_alive(), "the batch did not finish after the failover"
            assert group.primary_port() == group.replica.port != old_primary
            # Both workers reconnected by themselves: each answers a job sent to its own device.
            for device in (0, 1):
                details = client.submit("mlp", {"x": feeds["000"]}, device=device).details(60)
                assert details.device == device
            assert all(process.poll() is None for process in cluster.workers.values())
    (summary,) = summaries
    written = {p.stem for p in output.glob("*.npz")}
    assert summary.done + summary.failed == ITEMS  # nothing vanished
    assert summary.done == len(written)
    assert {f.item.removesuffix(".npy") for f in summary.failures} == set(feeds) - written  # the rest named
    # No retries: what the clients could not ride out would show here. Only jobs whose records
    # the replica never got (async replication) may fail, and each is named lost.
    assert {f.name for f in summary.failures} <= {"JobNotFound"}, summary.failures
    session = ort.InferenceSession(str(model_repo / "mlp" / "1" / "model.onnx"))
    for name in written:
        (expected,) = session.run(None, {"x": feeds[name]})
        np.testing.assert_allclose(np.load(output / f"{name}.npz")["y"], expected, rtol=1e-5, atol=1e-6)
    assert failover["seconds"] < 30
    print(f"failover {failover['seconds']:.2f} s; {summary.failed} of {ITEMS} items named failed")


@pytest.fixture(scope="module")
def lone_sentinel():
    """A sentinel monitoring a primary nobody runs: it answers, and knows only ``aclq``."""
    with SentinelServer(free_port()) as sentinel:
        yield sentinel


def bad_urls(sentinel_port: int) -> dict[str, tuple[str, str]]:
    """case -> (ACLQ_REDIS_URL, what the error must say)"""
    dead = ";".join(f"sentinel://127.0.0.1:{free_port()}" for _ in range(2))
    return {
        "unknown master": (
            f"sentinel://127.0.0.1:{sentinel_port}/0?master_name=nope",
            f"monitors a master named 'nope' (they monitor: {MASTER_NAME})",
        ),
        "no sentinel reachable": (f"{dead}/0?master_name={MASTER_NAME}", "no sentinel reachable"),
        "sentinel and plain URLs": (
            f"sentinel://127.0.0.1:{sentinel_port};redis://127.0.0.1:6379/0?master_name={MASTER_NAME}",
            "mixes sentinel:// with redis",
        ),
    }


@pytest.mark.parametrize("case", ["unknown master", "no sentinel reachable", "sentinel and plain URLs"])
def test_a_bad_sentinel_configuration_is_refused_at_start_up(case, lone_sentinel, model_repo):
    url, says = bad_urls(lone_sentinel.port)[case]
    for start in (lambda: Client(Settings(redis_url=url)), lambda: AsyncClient(Settings(redis_url=url))):
        with pytest.raises(ConfigError, match="ACLQ_REDIS_URL") as refused:
            start()
        assert says in str(refused.value)
    env = {**os.environ, "ACLQ_REDIS_URL": url, "ACLQ_MODEL_REPO": str(model_repo), "ACLQ_DEVICE_COUNT": "1"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "worker", "--device", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "ACLQ_REDIS_URL" in done.stderr and says in done.stderr, done.stderr
    assert time.monotonic() - started < 30  # refused, not retried


def test_the_async_client_uses_the_primary_the_sentinels_name():
    """The failover test drives the sync client; the asyncio one builds its own Sentinel client."""
    with SentinelGroup() as group:
        settings = Settings(redis_url=group.url(), namespace="async-sentinel")

        async def round_trip() -> bytes:
            client = AsyncClient(settings)
            try:
                await client._redis().set("k", b"v")
                return await client._redis().get("k")  # type: ignore[no-any-return]
            finally:
                await client.aclose()

        assert asyncio.run(round_trip()) == b"v"
        assert redis_client(settings).get("k") == b"v"
