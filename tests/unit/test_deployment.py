"""docker-compose.yml and the Dockerfile promise what docs/operations.md says.

`docker compose config` validates the file where the compose plugin is installed; the YAML
checks below run everywhere (they never pass vacuously: every promised service is looked at).
"""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from producer import Settings

ROOT = Path(__file__).resolve().parents[2]
ENV = {"REDIS_PASSWORD": "secret", "PATH": "/usr/bin:/bin"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_docker_compose_config_validates():
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("no docker compose plugin here; the YAML checks of this module stand in")
    for profile in ("npu", "cpu", "batch", "sentinel"):
        done = subprocess.run(
            [docker, "compose", "--profile", profile, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
            env=ENV, capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr


def test_services_the_docs_promise(compose):
    services = compose["services"]
    assert {"redis", "worker-npu0", "worker-npu1", "worker-cpu", "flower", "batch"} <= set(services)
    redis = services["redis"]
    assert "--appendonly" in redis["command"] and "yes" in redis["command"]
    assert "--requirepass" in redis["command"] and "${REDIS_PASSWORD" in " ".join(redis["command"])
    assert services["worker-cpu"]["profiles"] == ["cpu"] and services["batch"]["profiles"] == ["batch"]
    assert services["flower"]["image"].startswith("mher/flower")


@pytest.mark.parametrize("n", [0, 1])
def test_one_worker_per_npu_with_its_devices_and_driver(compose, n):
    worker = compose["services"][f"worker-npu{n}"]
    assert worker["profiles"] == ["npu"]
    assert set(worker["devices"]) == {f"/dev/davinci{n}", "/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"}
    assert "/usr/local/Ascend/driver:/usr/local/Ascend/driver:ro" in worker["volumes"]
    env = worker["environment"]
    assert env["ASCEND_VISIBLE_DEVICES"] == str(n) and env["ACLQ_PROVIDER"] == "cann"
    assert env["ACLQ_REDIS_URL"] == "${ACLQ_REDIS_URL:-redis://:${REDIS_PASSWORD}@redis:6379/0}"
    assert worker["command"] == ["worker", "--device", str(n)]
    assert worker["healthcheck"]["test"] == ["CMD", "aclq", "health", "--device", str(n)]
    assert worker["depends_on"]["redis"]["condition"] == "service_healthy"


def test_the_sentinel_profile_runs_a_replica_and_three_sentinels_of_one_master(compose):
    services = compose["services"]
    replica = services["redis-replica"]
    assert replica["profiles"] == ["sentinel"]
    assert " ".join(replica["command"]).endswith("--replicaof redis 6379")
    assert "--masterauth" in services["redis"]["command"]  # a demoted primary can follow the new one
    for n in (1, 2, 3):
        sentinel = services[f"sentinel{n}"]
        assert sentinel["profiles"] == ["sentinel"]
        script = sentinel["command"][-1]
        assert "sentinel monitor aclq redis 6379 2" in script and "sentinel auth-pass aclq" in script
        assert script.rstrip().endswith("exec redis-server /tmp/sentinel.conf --sentinel")
    example = (ROOT / ".env.example").read_text()
    url = next(line for line in example.splitlines() if "sentinel://" in line).lstrip("# ").split("=", 1)[1]
    target = Settings(redis_url=url).sentinel()
    assert target is not None and target.master_name == "aclq"
    assert [host for host, _ in target.sentinels] == ["sentinel1", "sentinel2", "sentinel3"]


def test_dockerfile_is_slim_non_root_with_a_dependency_layer():
    text = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in text
    assert "USER aclq" in text and "useradd" in text
    deps, sources = text.index('pip install ".[${EXTRA}]"'), text.index("COPY acl_core")
    assert deps < sources  # dependencies are installed before the sources are copied


def test_env_example_names_every_variable_compose_needs(compose):
    example = (ROOT / ".env.example").read_text()
    for name in ("REDIS_PASSWORD", "ACLQ_IMAGE", "ACLQ_EXTRA", "MODEL_REPO"):
        assert f"{name}=" in example
