"""Faults injected into real processes: each test gets its own Redis server (AOF on) and workers."""

import os

import pytest

from producer import Settings
from worker.embedded import RedisServer


@pytest.fixture
def server():
    with RedisServer(appendonly=True) as s:
        yield s


@pytest.fixture
def settings(server, model_repo, monkeypatch):
    monkeypatch.setenv("ACLQ_PROVIDER", "cpu")
    monkeypatch.setenv("ACLQ_DEVICE_COUNT", "2")
    return Settings(redis_url=server.url, model_repo=str(model_repo), namespace="chaos")


def pytest_collection_modifyitems(items):
    for item in items:
        if os.sep + "chaos" + os.sep in str(item.fspath):
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.timeout(300))  # fault recovery takes its time on slow machines
