"""Real Redis (started here on a free port) and real worker processes."""

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from producer import AsyncClient, AsyncJob, Client, Settings
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
    flush_namespace(redis_server.url, settings.namespace)


@pytest.fixture
def namespace(redis_server) -> Iterator[str]:
    """A namespace of this test's own on the session's server, flushed after it."""
    ns = f"n{uuid.uuid4().hex[:8]}"
    yield ns
    flush_namespace(redis_server.url, ns)


def flush_namespace(url: str, namespace: str) -> None:
    """Delete every key of ``namespace`` and of the namespaces tests derive from it (``ns-…``),
    kombu's bindings of their queues included: the session's server is shared by every module."""
    with redis.Redis.from_url(url) as r:
        for key in r.scan_iter(match=f"*{namespace}*", count=1000):
            r.delete(key)


@pytest.fixture
def client(cluster):
    with Client(cluster.settings) as c:
        yield c


class SyncedJob:
    """An AsyncJob behind Job's blocking verbs."""

    def __init__(self, client: "SyncedAsyncClient", job: AsyncJob) -> None:
        self._client, self._job, self.id = client, job, job.id

    def status(self) -> Any:
        return self._client.call(self._job.status())

    def result(self, timeout_s: float | None = None) -> Any:
        return self._client.call(self._job.result(timeout_s))

    def details(self, timeout_s: float | None = None) -> Any:
        return self._client.call(self._job.details(timeout_s))

    def cancel(self) -> Any:
        return self._client.call(self._job.cancel())


class SyncedAsyncClient:
    """AsyncClient behind Client's blocking verbs, on an event loop of its own, so that one test
    body runs against both clients and shows they behave the same."""

    def __init__(self, settings: Settings) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = self.call(self._open(settings))
        self.settings = self._client.settings

    @staticmethod
    async def _open(settings: Settings) -> AsyncClient:
        return AsyncClient(settings)

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def submit(self, model: str, inputs: Any, **options: Any) -> SyncedJob:
        return SyncedJob(self, self.call(self._client.submit(model, inputs, **options)))

    def submit_many(self, model: str, inputs: Any, **options: Any) -> list[SyncedJob]:
        return [SyncedJob(self, j) for j in self.call(self._client.submit_many(model, inputs, **options))]

    def infer(self, model: str, inputs: Any, **options: Any) -> Any:
        return self.call(self._client.infer(model, inputs, **options))

    def map(self, model: str, inputs: Any, **options: Any) -> Iterator[Any]:
        results = self._client.map(model, inputs, **options)
        while True:
            try:
                yield self.call(results.__anext__())
            except StopAsyncIteration:
                return

    def job(self, job_id: str) -> SyncedJob:
        return SyncedJob(self, self._client.job(job_id))

    def close(self) -> None:
        self.call(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@pytest.fixture(params=["Client", "AsyncClient"])
def either_client(request, cluster):
    """Each client in turn, with the same blocking verbs (AsyncClient through SyncedAsyncClient)."""
    c = Client(cluster.settings) if request.param == "Client" else SyncedAsyncClient(cluster.settings)
    yield c
    c.close()


@pytest.fixture
def raw_redis(cluster):
    r = redis.Redis.from_url(cluster.settings.redis_url)
    yield r
    r.close()
