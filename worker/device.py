"""A worker process's device: bound on the worker's start, released at its shutdown, and what the
task runs jobs with in between.

The solo pool sends ``worker_process_init`` in the consuming process (prefork would send it in
each child), and ``worker_shutdown`` at the end (solo sends no process-shutdown signal).
"""

import gc
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from celery import Celery, signals

from acl_core import AclError, Device
from acl_core.discovery import runtime_index
from acl_core.runtime import RUNTIME
from producer import keys
from producer.connection import redis_client
from producer.malloc import keep_message_buffers
from producer.settings import Settings
from producer.transport import Books
from producer.wire import INFER_TASK, WorkerBeat
from worker.cancels import CancelListener
from worker.executor import RECENT_S, Executor
from worker.failpoints import FailPoints
from worker.gather import Gathering
from worker.health import Heartbeat
from worker.lease import LeaseKeeper
from worker.metrics import Metrics
from worker.models import ModelCache, ModelRepository

log = logging.getLogger(__name__)


@dataclass
class BoundDevice:
    """What a worker owns while its device is bound."""

    device: Device
    models: ModelCache
    executor: Executor
    redis: redis.Redis
    leases: LeaseKeeper
    heartbeat: Heartbeat
    cancels: CancelListener
    metrics: Metrics
    started_at: float
    ready: bool = False


class DeviceWorker:
    """One worker process's device and everything that runs on it, from its settings."""

    def __init__(self, app: Celery, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.bound: BoundDevice | None = None

    def connect(self) -> None:
        """Bind on the worker's start, release at its end (Celery's signals)."""
        signals.worker_process_init.connect(self.bind, weak=False)
        signals.worker_ready.connect(self.announce, weak=False)
        signals.worker_shutdown.connect(self.release, weak=False)

    def bind(self, **_: object) -> None:
        settings = self.settings
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
        client = redis_client(settings)
        name = f"{settings.host}/device{settings.device}/pid{os.getpid()}"
        # One port per device on a host: device N serves ACLQ_METRICS_PORT + N.
        metrics = Metrics(settings.metrics_port + settings.device if settings.metrics_port else 0)
        failpoints = FailPoints(client, settings.namespace)
        books = Books.of(self.app.conf.broker_transport_options)
        executor = Executor(settings, device, models, client, name, metrics, failpoints, books)
        self.app.tasks[INFER_TASK].gathering = Gathering(models.config, failpoints)
        leases = LeaseKeeper(client, books.index, settings.visibility_timeout_s / 4)
        heartbeat = Heartbeat(client, keys.worker_heartbeat(settings.namespace, name), self._beat)
        cancels = CancelListener(client, keys.job_cancels(settings.namespace), executor.cancelled)
        bound = self.bound = BoundDevice(
            device, models, executor, client, leases, heartbeat, cancels, metrics, time.time()
        )
        heartbeat.start()
        cancels.start()
        warm_up(models, repository, settings.warmup_refs())
        bound.ready = True
        heartbeat.beat()
        log.info("worker %s bound device %d (%s)", name, device.id, device.provider)

    def _bound(self) -> BoundDevice:
        if self.bound is None:
            raise RuntimeError("the worker's device is not bound yet")  # a Celery signal came out of order
        return self.bound

    def run(self, jobs: list[tuple[str, bytes | None]], delivery_tags: list[str]) -> None:
        """Run the jobs of these messages; the messages are acknowledged with the answers."""
        self._bound().executor.run(jobs, delivery_tags)

    def announce(self, sender: Any = None, **_: object) -> None:
        """Tell whoever started this worker that it consumes now (`aclq up`, the test fixtures).

        What the start made (Celery, kombu, ONNX Runtime, the warmed models) lives as long as the
        process: frozen out of the collector's sight, a full collection of a draining worker
        takes 0.2 ms instead of pausing its loop for 18-20 ms (docs/performance.md). No collection
        first: it would cost every start that pause, to free the start's few cyclic leftovers."""
        gc.freeze()
        bound = self._bound()
        bound.redis.lpush(keys.workers_ready(self.settings.namespace), bound.executor.name)

    def after_job(self) -> None:
        """Let `aclq status` see the job soon (the heartbeat batches these nudges)."""
        self._bound().heartbeat.nudge()

    def dead_lettered(self, queue_key: str, reason: str) -> None:
        """Count a queue entry the transport moved to the dead-letter list (it logged it)."""
        if self.bound is not None:
            self.bound.metrics.dead_letters.labels(queue=queue_key).inc()

    def release(self, **_: object) -> None:
        """Stop renewing and beating, then free the device."""
        bound, self.bound = self.bound, None
        if bound is None:
            return
        bound.leases.close()
        bound.heartbeat.close()
        bound.cancels.close()
        bound.executor.close()
        bound.device.close()
        log.info("worker released device %d", bound.device.id)

    def _beat(self) -> WorkerBeat:
        bound = self._bound()
        executor, counters = bound.executor, bound.executor.counters
        done_recent, failed_recent = counters.recent_counts()
        memory = bound.device.memory()
        return WorkerBeat(
            host=self.settings.host, device=self.settings.device, runtime_device=bound.device.id,
            provider=bound.device.provider, pid=os.getpid(),
            queues=tuple(q.name for q in self.app.conf.task_queues), ready=bound.ready,
            started_at=bound.started_at, done=counters.done, failed=counters.failed,
            done_recent=done_recent, failed_recent=failed_recent, recent_s=RECENT_S,
            last_job_at=counters.last_job_at, models=tuple(bound.models.names()),
            broken=tuple(bound.models.broken()),
            memory_in_use=memory.in_use, memory_total=memory.total, name=executor.name,
        )  # fmt: skip


def warm_up(models: ModelCache, repository: ModelRepository, named: list[tuple[str, int | None]]) -> None:
    """Load, and run once on zeros, every model whose config.json asks for warm-up and every one
    ``named`` (ACLQ_WARMUP_MODELS: what `aclq batch` and `aclq perf` give the workers they
    start, so that a model loads while the worker starts, not in its first job)."""
    flagged: list[tuple[str, int | None]] = []
    for name in repository.names():
        try:
            if repository.resolve(name).config.warmup:
                flagged.append((name, None))
        except AclError as exc:
            log.warning("warm-up of %s failed: %s", name, exc)
    for name, version in dict.fromkeys([*flagged, *named]):
        try:
            model, ref = models.get(name, version)
            model.execute({s.name: np.zeros([max(d, 1) for d in s.dims], s.numpy_dtype) for s in model.inputs})
            log.info("warmed up %s:%d", ref.name, ref.version)
        except AclError as exc:
            log.warning("warm-up of %s failed: %s", name if version is None else f"{name}:{version}", exc)
