"""The worker app is built from its settings, in-process, with nothing read at import: two apps
for two devices in one process do not share queues, tasks or bound state."""

import gc
from types import SimpleNamespace

import pytest

from producer import ConfigError, Settings, keys
from producer.transport import CLAIM_ROWS_OPTION, DEAD_LETTER_HOOK_OPTION
from producer.wire import INFER_TASK
from worker.app import create_app
from worker.device import DeviceWorker
from worker.gather import GatheringTask
from worker.main import run_worker


def test_two_workers_built_in_one_process_are_their_own(model_repo):
    base = {"redis_url": "redis://127.0.0.1:1/0", "namespace": "t", "host": "h", "model_repo": str(model_repo)}
    first, second = (create_app(Settings(**base, device=n)) for n in (0, 1))
    assert [q.name for q in first.conf.task_queues] == ["t.host.h.device.0", "t.device.0", "t.shared"]
    assert [q.name for q in second.conf.task_queues] == ["t.host.h.device.1", "t.device.1", "t.shared"]
    tasks = first.tasks[INFER_TASK], second.tasks[INFER_TASK]
    assert tasks[0] is not tasks[1] and all(isinstance(t, GatheringTask) for t in tasks)
    tasks[0].gathering = object()  # what binding sets: one app's, not the class's
    assert tasks[1].gathering is None and GatheringTask.gathering is None
    hooks = [app.conf.broker_transport_options[DEAD_LETTER_HOOK_OPTION] for app in (first, second)]
    assert hooks[0].__self__ is not hooks[1].__self__  # each app's own DeviceWorker
    assert first.conf.worker_prefetch_multiplier == 64  # the repository's largest max_batch_size
    assert first.conf.broker_transport_options[CLAIM_ROWS_OPTION] == 64  # and no more rows a claim


def test_a_worker_refuses_an_unknown_log_level_before_it_starts(model_repo):
    settings = Settings(redis_url="redis://127.0.0.1:1/0", namespace="t", model_repo=str(model_repo))
    with pytest.raises(ConfigError, match="log level 'loud': expected one of DEBUG, INFO"):
        run_worker(settings, "loud")


def test_a_worker_ready_freezes_what_its_start_made(model_repo):
    """What a worker's start made lives as long as it does: frozen when it says it is ready, so
    the collector's full collections no longer walk it (docs/performance.md)."""
    settings = Settings(redis_url="redis://127.0.0.1:1/0", namespace="t", model_repo=str(model_repo))
    pushed = []
    worker = DeviceWorker(create_app(settings), settings)
    redis = SimpleNamespace(lpush=lambda key, name: pushed.append((key, name, gc.get_freeze_count())))
    worker.bound = SimpleNamespace(redis=redis, executor=SimpleNamespace(name="w"))  # type: ignore[assignment]
    gc.unfreeze()
    try:
        worker.announce()
        assert len(pushed) == 1 and pushed[0][:2] == (keys.workers_ready("t"), "w")
        assert pushed[0][2] > 0  # frozen before it said so
    finally:
        gc.unfreeze()
