"""Real Redis (started here on a free port) and real worker processes."""

import os
import uuid

import pytest
import redis

from producer import Client, Settings
from worker.embedded import RedisServer
from worker.local import LocalCluster

#: two virtual CPU devices for every worker process these tests start
WORKER_ENV = {"ACLQ_PROVIDER": "cpu", "ACLQ_DEVICE_COUNT": "2"}


@pytest.fixture(scope="session")
def redis_server():
    """A private server with AOF on, so tests can stop and restart it without losing data."""
    try:
        server = RedisServer(appendonly=True).start()
    except Exception as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot start a Redis server here: {exc}")
    yield server
    server.close()


@pytest.fixture(scope="session", autouse=True)
def worker_env():
    with pytest.MonkeyPatch.context() as mp:
        for key, value in WORKER_ENV.items():
            mp.setenv(key, value)
        yield


@pytest.fixture(scope="module")
def cluster(redis_server, model_repo):
    """Two workers (devices 0 and 1) in a namespace of this module's own."""
    settings = Settings(redis_url=redis_server.url, namespace=f"t{uuid.uuid4().hex[:8]}", model_repo=str(model_repo))
    with LocalCluster(settings, devices=[0, 1]) as running:
        yield running


@pytest.fixture
def client(cluster):
    with Client(cluster.settings) as c:
        yield c


@pytest.fixture
def raw_redis(cluster):
    r = redis.Redis.from_url(cluster.settings.redis_url)
    yield r
    r.close()
