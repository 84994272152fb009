"""Pure-performance runs (`aclq perf`, ais_bench's ``--loop``/``--warmup``): one input sent
again and again through the queue, with throughput and latency percentiles per device.

Every job reports its own timings (the worker measures them: ``exec_ms`` the model's execution,
ais_bench's NPU compute time; ``total_ms`` from enqueue to answer), so the figures do not depend
on the order in which the results are collected.
"""

import statistics
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Unpack

import numpy as np

from producer.client import Client, SubmitOptions
from producer.errors import ConfigError
from producer.wire import ResultEnvelope


@dataclass(frozen=True)
class Spread:
    """Milliseconds: ais_bench's min, max, mean, median and percentiles."""

    min: float
    max: float
    mean: float
    median: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values_ms: list[float]) -> "Spread":
        if not values_ms:
            raise ConfigError("no timings to summarise")
        p90, p99 = np.percentile(values_ms, [90, 99])
        return cls(
            min(values_ms), max(values_ms), statistics.fmean(values_ms), statistics.median(values_ms),
            float(p90), float(p99),
        )  # fmt: skip

    def line(self) -> str:
        return (
            f"min = {self.min:.2f}, max = {self.max:.2f}, mean = {self.mean:.2f}, median = {self.median:.2f}, "
            f"percentile(90%) = {self.p90:.2f}, percentile(99%) = {self.p99:.2f}"
        )


@dataclass(frozen=True)
class DevicePerf:
    jobs: int
    compute_ms: Spread  #: the model's execution on the device (ais_bench's NPU_compute_time)
    latency_ms: Spread  #: enqueue to answer
    #: rows a second the device's compute time allows: 1000 x rows / mean compute (ais_bench's throughput)
    compute_throughput: float


@dataclass(frozen=True)
class PerfSummary:
    model: str
    loop: int
    warmup: int
    rows: int  #: rows (leading axis) of one job's input: a job of a batch of 8 counts 8
    elapsed_s: float
    throughput: float  #: rows a second through the queue, end to end, every device together
    compute_ms: Spread
    latency_ms: Spread
    devices: dict[str, DevicePerf] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def render(self) -> str:
        lines = [
            "-----------------Performance Summary------------------",
            f"model {self.model}: {self.loop} jobs of {self.rows} row(s) after {self.warmup} warm-up, "
            f"in {self.elapsed_s:.2f} s",
            f"compute_time (ms): {self.compute_ms.line()}",
            f"latency, enqueue to answer (ms): {self.latency_ms.line()}",
            f"throughput (rows/s, end to end): {self.throughput:.2f}",
        ]
        for device, perf in self.devices.items():
            lines.append(
                f"device {device}: {perf.jobs} jobs, compute_time mean {perf.compute_ms.mean:.2f} ms, "
                f"median {perf.compute_ms.median:.2f} ms, percentile(99%) {perf.compute_ms.p99:.2f} ms; "
                f"throughput 1000 x rows / compute_time.mean: {perf.compute_throughput:.2f}"
            )
        lines.append("------------------------------------------------------")
        return "\n".join(lines)


def run_perf(
    client: Client,
    model: str,
    inputs: Mapping[str, np.ndarray],
    *,
    loop: int = 100,
    warmup: int = 10,
    window: int = 16,
    **options: Unpack[SubmitOptions],
) -> PerfSummary:
    """``warmup`` jobs (not counted: model loads, first runs), then ``loop`` jobs with at most
    ``window`` in flight; a job that fails raises (JobFailed, with its ACL code)."""
    if loop < 1 or warmup < 0:
        raise ConfigError(f"loop must be >= 1 and warmup >= 0, got {loop} and {warmup}")
    for _ in client.map_details(model, [inputs] * warmup, window=window, **options):
        pass
    started = time.perf_counter()
    results = list(client.map_details(model, [inputs] * loop, window=window, **options))
    elapsed = time.perf_counter() - started
    rows = min((len(a) if a.ndim else 1) for a in inputs.values()) if inputs else 1
    by_device: dict[str, list[ResultEnvelope]] = {}
    for result in results:
        by_device.setdefault(str(result.device), []).append(result)
    return PerfSummary(
        model=model,
        loop=loop,
        warmup=warmup,
        rows=rows,
        elapsed_s=round(elapsed, 3),
        throughput=loop * rows / elapsed,
        compute_ms=Spread.of([r.timings["exec_ms"] for r in results]),
        latency_ms=Spread.of([r.timings["total_ms"] for r in results]),
        devices={device: _device_perf(done, rows) for device, done in sorted(by_device.items())},
    )


def _device_perf(results: list[ResultEnvelope], rows: int) -> DevicePerf:
    compute = Spread.of([r.timings["exec_ms"] for r in results])
    return DevicePerf(
        jobs=len(results),
        compute_ms=compute,
        latency_ms=Spread.of([r.timings["total_ms"] for r in results]),
        compute_throughput=1000 * rows / compute.mean if compute.mean > 0 else 0.0,
    )
