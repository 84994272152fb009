"""Binds this worker process to its device on Celery's signals, and releases it at shutdown.

The solo pool sends ``worker_process_init`` in the consuming process (prefork would send it in
each child), and ``worker_shutdown`` at the end (solo sends no process-shutdown signal).
"""

import logging
import os
import sys
import time
from typing import Any

import numpy as np
import redis
from celery import signals

from acl_core import AclError, Device
from acl_core.discovery import runtime_index
from acl_core.runtime import RUNTIME
from producer import keys
from producer.dispatch import REDIS_OPTIONS
from producer.malloc import keep_message_buffers
from producer.transport import DEAD_LETTER_HOOK_OPTION, unacked_index_key
from worker.app import app, settings
from worker.executor import RECENT_S, Executor
from worker.failpoints import FailPoints
from worker.gather import Gathering, GatheringTask
from worker.health import Heartbeat
from worker.lease import LeaseKeeper
from worker.metrics import Metrics
from worker.models import ModelCache, ModelRepository

log = logging.getLogger(__name__)
_bound: dict[str, object] = {}


def executor() -> Executor:
    return _bound["executor"]  # type: ignore[return-value]


@signals.worker_process_init.connect
def bind(**_: object) -> None:
    keep_message_buffers()
    try:
        RUNTIME.ensure_initialized()
        # ACLQ_DEVICE numbers the host's devices; this process may see its device under another index.
        device = Device(runtime_index(str(getattr(RUNTIME.backend, "provider", "")), settings.device))
    except AclError as exc:
        log.critical("device %d cannot be bound: %s", settings.device, exc)
        sys.stderr.write(f"aclq worker: device {settings.device} cannot be bound: {exc}\n")
        os._exit(3)  # Celery would swallow an exception here; the process must not serve
    repository = ModelRepository(settings.model_repo)
    models = ModelCache(device, repository, settings.model_cache_mb << 20)
    client = redis.Redis.from_url(settings.require_url(), **REDIS_OPTIONS)
    name = f"{settings.host}/device{settings.device}/pid{os.getpid()}"
    # One port per device on a host: device N serves ACLQ_METRICS_PORT + N.
    metrics = Metrics(settings.metrics_port + settings.device if settings.metrics_port else 0)
    failpoints = FailPoints(client, settings.namespace)
    executor = Executor(settings, device, models, client, name, metrics, failpoints)
    GatheringTask.gathering = Gathering(models.config, failpoints)
    index_key = unacked_index_key(app.conf.broker_transport_options)
    leases = LeaseKeeper(client, index_key, settings.visibility_timeout_s / 4)
    state = {"ready": 0, "started_at": time.time()}
    heartbeat = Heartbeat(
        client, keys.worker_heartbeat(settings.namespace, name), lambda: _snapshot(executor, models, state)
    )
    _bound.update(device=device, executor=executor, redis=client, leases=leases, heartbeat=heartbeat, metrics=metrics)
    heartbeat.start()
    warm_up(models, repository)
    state["ready"] = 1
    heartbeat.beat()
    log.info("worker %s bound device %d (%s)", name, device.id, device.provider)


def dead_lettered(queue_key: str, reason: str) -> None:
    """Count a queue entry the transport moved to the dead-letter list (it logged it)."""
    metrics = _bound.get("metrics")
    if isinstance(metrics, Metrics):
        metrics.dead_letters.labels(queue=queue_key).inc()


app.conf.broker_transport_options[DEAD_LETTER_HOOK_OPTION] = dead_lettered


def warm_up(models: ModelCache, repository: ModelRepository) -> None:
    """Load, and run once on zeros, every model whose config.json asks for warm-up."""
    for name in repository.names():
        try:
            if not repository.resolve(name).config.warmup:
                continue
            model, ref = models.get(name)
            model.execute({s.name: np.zeros([max(d, 1) for d in s.dims], s.numpy_dtype) for s in model.inputs})
            log.info("warmed up %s:%d", ref.name, ref.version)
        except AclError as exc:
            log.warning("warm-up of %s failed: %s", name, exc)


def _snapshot(executor: Executor, models: ModelCache, state: dict[str, float]) -> dict[str, object]:
    done_recent, failed_recent = executor.counters.recent_counts()
    memory = executor.device.memory()
    return {
        "host": settings.host, "device": settings.device, "runtime_device": executor.device.id,
        "provider": executor.device.provider, "pid": os.getpid(),
        "queues": ",".join(q.name for q in app.conf.task_queues), "ready": int(state["ready"]),
        "started_at": state["started_at"], "done": executor.counters.done, "failed": executor.counters.failed,
        "done_recent": done_recent, "failed_recent": failed_recent, "recent_s": RECENT_S,
        "last_job_at": executor.counters.last_job_at, "models": ",".join(models.names()),
        "memory_in_use": memory.in_use, "memory_total": memory.total,
    }  # fmt: skip


@signals.worker_ready.connect
def announce(sender: object = None, **_: object) -> None:
    """Tell whoever started this worker that it consumes now (`aclq up`, the test fixtures)."""
    client: redis.Redis = _bound["redis"]  # type: ignore[assignment]
    client.lpush(keys.workers_ready(settings.namespace), executor().name)


@signals.task_received.connect
def lease(request: Any = None, **_: object) -> None:
    """From the moment a job is received, its lease is renewed until it finishes."""
    _leases().acquire(request.id, request.message.delivery_tag)


def release_leases(task_ids: list[str]) -> None:
    """Stop renewing these messages' leases: their jobs are answered."""
    for task_id in task_ids:
        _leases().release(task_id)


def after_job() -> None:
    """Let `aclq status` see the job soon (the heartbeat batches these nudges)."""
    heartbeat = _bound.get("heartbeat")
    if isinstance(heartbeat, Heartbeat):
        heartbeat.nudge()


def _leases() -> LeaseKeeper:
    return _bound["leases"]  # type: ignore[return-value]


@signals.worker_shutdown.connect
def release(**_: object) -> None:
    """Stop renewing and beating, then free the device; each part only if it was bound."""
    for part in ("leases", "heartbeat"):
        running = _bound.pop(part, None)
        if isinstance(running, LeaseKeeper | Heartbeat):
            running.close()
    device = _bound.pop("device", None)
    if isinstance(device, Device):
        device.close()
        log.info("worker released device %d", device.id)


__all__ = ["after_job", "app", "executor", "release_leases"]
