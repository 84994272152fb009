"""Binds this worker process to its device on Celery's signals, and releases it at shutdown.

The solo pool sends ``worker_process_init`` in the consuming process (prefork would send it in
each child), and ``worker_shutdown`` at the end (solo sends no process-shutdown signal).
"""

import logging
import os
import socket
import sys
from typing import Any

import redis
from celery import signals

from acl_core import AclError, Device
from producer import keys
from producer.dispatch import REDIS_OPTIONS
from producer.malloc import keep_message_buffers
from worker.app import app, settings
from worker.executor import Executor
from worker.lease import LeaseKeeper
from worker.models import ModelCache, ModelRepository

log = logging.getLogger(__name__)
_bound: dict[str, object] = {}


def executor() -> Executor:
    return _bound["executor"]  # type: ignore[return-value]


@signals.worker_process_init.connect
def bind(**_: object) -> None:
    keep_message_buffers()
    try:
        device = Device(settings.device)
    except AclError as exc:
        log.critical("device %d cannot be bound: %s", settings.device, exc)
        sys.stderr.write(f"aclq worker: device {settings.device} cannot be bound: {exc}\n")
        os._exit(3)  # Celery would swallow an exception here; the process must not serve
    models = ModelCache(device, ModelRepository(settings.model_repo), settings.model_cache_mb << 20)
    client = redis.Redis.from_url(settings.require_url(), **REDIS_OPTIONS)
    name = f"{socket.gethostname()}/device{settings.device}/pid{os.getpid()}"
    leases = LeaseKeeper(client, settings.visibility_timeout_s / 4)
    _bound.update(device=device, executor=Executor(settings, device, models, client, name), redis=client, leases=leases)
    log.info("worker %s bound device %d (%s)", name, device.id, device.provider)


@signals.worker_ready.connect
def announce(sender: object = None, **_: object) -> None:
    """Tell whoever started this worker that it consumes now (`aclq up`, the test fixtures)."""
    client: redis.Redis = _bound["redis"]  # type: ignore[assignment]
    client.lpush(keys.workers_ready(settings.namespace), executor().name)


@signals.task_received.connect
def lease(request: Any = None, **_: object) -> None:
    """From the moment a job is received, its lease is renewed until it finishes."""
    _leases().acquire(request.id, request.message.delivery_tag)


@signals.task_postrun.connect
def unlease(task_id: str = "", **_: object) -> None:
    _leases().release(task_id)


def _leases() -> LeaseKeeper:
    return _bound["leases"]  # type: ignore[return-value]


@signals.worker_shutdown.connect
def release(**_: object) -> None:
    _leases().close()
    device = _bound.pop("device", None)
    if isinstance(device, Device):
        device.close()
        log.info("worker released device %d", device.id)


__all__ = ["app", "executor"]
