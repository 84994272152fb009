"""A worker's Prometheus metrics (prometheus_client), served on ``ACLQ_METRICS_PORT`` when set.

The metrics always exist (updating them is cheap); with no port nothing serves them. Jobs are
counted per job, executions per execution (a batch is one, and so is each run of a job split
into runs), and the gauges are read when scraped, not set on every job.
"""

from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class Metrics:
    def __init__(self, port: int = 0) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.jobs = Counter("aclq_jobs", "Jobs answered, by model and status", ["model", "status"], registry=registry)
        self.queue_wait = Histogram(
            "aclq_queue_wait_seconds", "Enqueue to execution start", buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.execution = Histogram(
            "aclq_execution_seconds", "Model execution", ["model"], buckets=_LATENCY_BUCKETS, registry=self.registry
        )
        self.batch_size = Histogram(
            "aclq_batch_rows", "Rows (first axis of the first input) per execution",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=self.registry,
        )  # fmt: skip
        # Each series is looked up once, not per job or run: prometheus_client's labels() (a
        # lock, a tuple) was 4 % of a worker's main thread draining a backlog in batches of 64.
        self._jobs: dict[tuple[str, ...], Counter] = {}  #: jobs' series by (model, status)
        self._execution: dict[tuple[str, ...], Histogram] = {}  #: execution's series by model
        self.device_memory = Gauge("aclq_device_memory_in_use_bytes", "Device memory in use", registry=registry)
        self.dead_letters = Counter(
            "aclq_dead_letters",
            "Queue entries that were not messages, moved to the dead-letter list",
            ["queue"],
            registry=registry,
        )
        self.models_loaded = Gauge("aclq_models_loaded", "Models loaded on the device", registry=self.registry)
        if port:
            start_http_server(port, registry=self.registry)

    def watch(self, device_memory: Callable[[], float], models_loaded: Callable[[], float]) -> None:
        """The gauges' sources, called at each scrape."""
        self.device_memory.set_function(device_memory)
        self.models_loaded.set_function(models_loaded)

    def answered(self, model: str, status: str, queued_s: float | None) -> None:
        """One job answered: ``status`` ok or its ACL code."""
        _series(self._jobs, self.jobs, model or "-", status).inc()
        if queued_s is not None:
            self.queue_wait.observe(queued_s)

    def executed(self, model: str, exec_s: float, rows: int) -> None:
        """One execution: of one job, of a run of its rows, or of a batch of jobs."""
        _series(self._execution, self.execution, model).observe(exec_s)
        self.batch_size.observe(rows)


_Metric = TypeVar("_Metric", Counter, Histogram)


def _series(kept: dict[tuple[str, ...], _Metric], metric: _Metric, *labels: str) -> _Metric:
    """``metric``'s series of ``labels``, kept in ``kept`` once looked up."""
    series = kept.get(labels)
    if series is None:
        series = kept[labels] = metric.labels(*labels)
    return series
