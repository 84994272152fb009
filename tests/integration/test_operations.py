"""Operations: two worker hosts on one Redis, `aclq status` and `aclq health`, metrics, warm-up."""

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import replace

import numpy as np
import pytest

from producer import Client, ConfigError, JobFailed, Settings, keys
from producer.status import read_status
from worker.embedded import free_port
from worker.local import LocalCluster

GOOD = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


def aclq(settings, *args):
    env = {**os.environ, **settings.to_env()}
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def wait_for_heartbeats(client, ready) -> None:
    """Block until the workers' heartbeats satisfy ``ready(status)``: keyspace events, no sleeps."""
    client._redis.config_set("notify-keyspace-events", "Kh")
    with client._redis.pubsub() as sub:
        sub.psubscribe(f"__keyspace@0__:{keys.worker_heartbeat(client.settings.namespace, '*')}")
        while not ready(read_status(client._redis, client.settings)):
            sub.get_message(timeout=1.0)


@pytest.fixture
def two_hosts(redis_server, model_repo, namespace):
    """Host alpha with devices 0 and 1, host beta with device 0: separate processes, one Redis."""
    base = Settings(redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo))
    with (
        LocalCluster(replace(base, host="alpha"), devices=[0, 1]),
        LocalCluster(replace(base, host="beta"), devices=[0]),
    ):
        yield base


def test_routing_across_hosts_and_status(two_hosts):
    with Client(two_hosts) as client:
        assert client.submit("add", GOOD, device=0, host="beta").details(30).worker.startswith("beta/device0/")
        assert client.submit("add", GOOD, device=0, host="alpha").details(30).worker.startswith("alpha/device0/")
        assert {client.submit("add", GOOD, device=1).details(30).worker.split("/")[0] for _ in range(4)} == {"alpha"}
        shared = {client.submit("add", GOOD).details(30).worker.split("/pid")[0] for _ in range(30)}
        assert shared <= {"alpha/device0", "alpha/device1", "beta/device0"}
        with pytest.raises(ConfigError, match="needs a device"):
            client.submit("add", GOOD, host="beta")
        wait_for_heartbeats(client, lambda s: sum(w.done for w in s.workers) >= 36)

    status = json.loads(aclq(two_hosts, "status", "--json").stdout)
    hosts = sorted((w["host"], w["device"]) for w in status["workers"])
    assert hosts == [("alpha", 0), ("alpha", 1), ("beta", 0)] and all(w["ready"] is True for w in status["workers"])
    ns = two_hosts.namespace
    assert {f"{ns}.shared", f"{ns}.device.1", f"{ns}.host.beta.device.0"} <= set(status["queues"])
    assert status["throughput_per_s"] > 0 and status["error_rate"] == 0
    assert sum(w["done"] for w in status["workers"]) >= 36
    table = aclq(two_hosts, "status").stdout
    assert f"{ns}.host.alpha.device.1" in table and "add:1" in table and "jobs/s" in table

    assert aclq(replace(two_hosts, host="beta"), "health", "--device", "0").returncode == 0
    missing = aclq(replace(two_hosts, host="beta"), "health", "--device", "1")
    assert missing.returncode == 1 and "no ready worker for host beta device 1" in missing.stderr


def test_metrics_endpoint_and_warm_up(redis_server, model_repo, tmp_path, namespace):
    config = model_repo / "mlp" / "config.json"
    kept = config.read_text()  # the session's repository: the tests after this one batch mlp
    config.write_text(json.dumps({**json.loads(kept), "warmup": True}))
    port = free_port()
    try:
        settings = Settings(
            redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo), metrics_port=port
        )
        with LocalCluster(settings, devices=[0]), Client(settings) as client:
            assert read_status(client._redis, settings).workers[0].models == ("mlp:1",)  # warmed up before ready
            client.infer("add", GOOD, result_timeout_s=30)
            with pytest.raises(JobFailed):
                client.infer("add", {"a": GOOD["a"]}, result_timeout_s=30)
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        config.write_text(kept)
    assert 'aclq_jobs_total{model="add",status="ok"} 1.0' in text
    assert 'aclq_jobs_total{model="add",status="100017"} 1.0' in text
    assert "aclq_execution_seconds_count" in text and "aclq_queue_wait_seconds_bucket" in text
    assert "aclq_models_loaded 2.0" in text and "aclq_device_memory_in_use_bytes 0.0" in text
    assert "aclq_batch_rows_count 1.0" in text


def test_models_named_for_warm_up_are_loaded_before_the_worker_is_ready(redis_server, model_repo, namespace, capfd):
    """ACLQ_WARMUP_MODELS (what `aclq batch` gives the workers it starts): each loaded and run
    once before the worker is ready; a name the repository lacks is logged, and the worker
    serves on."""
    settings = Settings(
        redis_url=redis_server.url, namespace=namespace, model_repo=str(model_repo), warmup_models="conv,nosuch,mlp:1"
    )
    with LocalCluster(settings, devices=[0], loglevel="INFO") as cluster, Client(settings) as client:
        (worker,) = read_status(client._redis, settings).workers
        assert worker.ready and sorted(worker.models) == ["conv:1", "mlp:1"]  # before any job
        assert worker.done == 0
        np.testing.assert_array_equal(client.infer("add", GOOD, result_timeout_s=30)["c"], GOOD["a"] + GOOD["b"])
        assert cluster.workers[0].poll() is None
    assert "warm-up of nosuch failed" in capfd.readouterr().err  # the worker's log, on this process's stderr
