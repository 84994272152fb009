"""How many devices one Redis can feed: what a job costs Redis on each path, the ceiling that
implies, and a check of that model against 16 and 32 workers on this machine.

    python -m bench.scaling [--jobs N] [--seconds S]

1. Cost per job, one worker (bench.round_trips' method: ``INFO commandstats``, ``INFO stats``
   bytes and ``INFO cpu`` around N jobs, each waited for before the next, the worker's idle
   background over as long a stretch subtracted): a tiny job (add) one a message, inline; the
   same 32 a message (``map``); 1 MiB in and out (identity_uint8), by claim check; an ``aclq
   batch`` item (a 1x64 .npy file through the mlp, window 8), by bytes and by reference (the
   worker reads the file and writes the outputs: Redis carries records only, whatever the size).
2. Idle cost per worker: W workers doing nothing for S seconds (doorbell waits that time out
   and claim, heartbeats, kombu's restore sweeps): Redis CPU and commands per worker-second.
3. The model: one Redis core sustains ``(1 - W x idle) / cpu per job`` jobs/s, and feeds
   ``that x device time`` devices busy all the time, at device times of 1, 10 and 100 ms.
4. The check: 16, then 32 workers (CPU virtual devices, ACLQ_DEVICE_COUNT=32) running add
   (microseconds), tiny jobs sent by 2 x W callers in a closed loop, one job a message
   (coalescing off), then by ``map`` (32 a message) from 4 callers, for S seconds each: the
   jobs/s the whole system reached, and Redis' CPU at that rate beside the model's prediction
   (rate x cost per job + W x idle). On 2 cores the workers' and callers' Python is the limit
   long before Redis is, so the check is of the cost model at the rate reached, and the ceiling
   is the model's extrapolation from it.
"""

import argparse
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import redis

from bench.round_trips import commandstats, redis_cpu_s
from examples.build_models import build
from producer import Client, Settings
from producer.batch import run_batch
from producer.connection import redis_client
from worker.local import LocalCluster

T = TypeVar("T")
DEVICE_TIMES_MS = (1, 10, 100)
WORKER_COUNTS = (16, 32)
CHUNK = 32
TINY = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}


@dataclass(frozen=True)
class Usage:
    """What Redis served over a stretch: command calls, bytes in and out, CPU seconds."""

    calls: Counter[str]
    bytes: int
    cpu_s: float
    seconds: float

    @classmethod
    def measure(cls, r: redis.Redis, run: Callable[[], T]) -> "tuple[Usage, T]":
        """What Redis served while ``run`` ran, and what ``run`` returned."""
        r.config_resetstat()
        net, cpu, started = _net_bytes(r), redis_cpu_s(r), time.monotonic()
        result = run()
        seconds, cpu_s, net_bytes = time.monotonic() - started, redis_cpu_s(r) - cpu, _net_bytes(r) - net
        calls = Counter({k: v for k, v in commandstats(r).items() if not k.startswith(("config", "info"))})
        return cls(calls, net_bytes, cpu_s, seconds), result

    def per(self, n: float, less: "Usage | None" = None) -> tuple[float, float, float]:
        """(commands, bytes, CPU microseconds) per unit of ``n``; ``less``: a background over the
        same stretch, scaled to this one's length, taken off first."""
        scale = self.seconds / less.seconds if less else 0.0
        commands = sum(self.calls.values()) - (sum(less.calls.values()) * scale if less else 0)
        net = self.bytes - (less.bytes * scale if less else 0)
        cpu = self.cpu_s - (less.cpu_s * scale if less else 0)
        return commands / n, net / n, cpu / n * 1e6


def _net_bytes(r: redis.Redis) -> int:
    stats = r.info("stats")
    return int(stats["total_net_input_bytes"]) + int(stats["total_net_output_bytes"])


def idle(r: redis.Redis, seconds: float) -> Usage:
    return Usage.measure(r, lambda: time.sleep(seconds))[0]


def closed_loop(client: Client, callers: int, seconds: float, many: bool) -> int:
    """Jobs answered in ``seconds`` by ``callers`` threads, each waiting for its job (or its
    ``map`` of CHUNK jobs) before sending the next."""
    done = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def caller() -> None:
        while time.monotonic() < deadline:
            if many:
                count = sum(1 for _ in client.map("add", [TINY] * CHUNK, window=CHUNK))
            else:
                client.infer("add", TINY, result_timeout_s=60)
                count = 1
            with lock:
                done[0] += count

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0]


def per_job_costs(repo: Path, tmp: Path, jobs: int) -> dict[str, tuple[float, float, float]]:
    """Part 1: path -> (commands, bytes, Redis CPU us) per job, one worker."""
    rng = np.random.default_rng(0)
    source = tmp / "items"
    source.mkdir()
    items = max(jobs // 5, 50)
    for i in range(items):
        np.save(source / f"{i:05d}.npy", rng.standard_normal((1, 64)).astype(np.float32))
    mib = {"x": np.zeros((1024, 1024), np.uint8)}
    costs = {}
    with LocalCluster(Settings(model_repo=str(repo), namespace="scaling"), devices=[0]) as cluster:
        with Client(cluster.settings) as client, redis_client(cluster.settings) as r:
            for model, feeds in (("add", TINY), ("identity_uint8", mib), ("mlp", {"x": np.zeros((1, 64), np.float32)})):
                client.infer(model, feeds, result_timeout_s=60)  # loaded before counting
            paths: dict[str, tuple[Callable[[], object], int]] = {
                "tiny, inline, one a message": (lambda: [client.infer("add", TINY) for _ in range(jobs)], jobs),
                f"tiny, {CHUNK} a message (map)": (
                    lambda: list(client.map("add", [TINY] * (jobs // CHUNK * CHUNK), window=CHUNK)),
                    jobs // CHUNK * CHUNK,
                ),
                "1 MiB in + out, claim check": (
                    lambda: [client.infer("identity_uint8", mib) for _ in range(jobs // 5)],
                    jobs // 5,
                ),
                "aclq batch item (1x64 .npy, mlp)": (
                    lambda: run_batch(client, "mlp", source, tmp / "out", window=8),
                    items,
                ),
                "aclq batch item by reference": (
                    lambda: run_batch(client, "mlp", source, tmp / "out_ref", window=8, transfer="ref"),
                    items,
                ),
            }
            for name, (run, n) in paths.items():
                busy, _ = Usage.measure(r, run)
                costs[name] = busy.per(n, idle(r, busy.seconds))
    return costs


def simulate(repo: Path, seconds: float, cost: dict[str, tuple[float, float, float]]) -> list[dict[str, float | str]]:
    """Part 4: measured against predicted, for each worker count and path."""
    rows: list[dict[str, float | str]] = []
    settings = Settings(model_repo=str(repo), namespace="scaling-sim", coalesce_max_jobs=1)
    with LocalCluster(settings, devices=[]) as cluster, Client(cluster.settings) as client:
        r = redis_client(cluster.settings)
        started = 0
        for workers in WORKER_COUNTS:
            for device in range(started, workers):
                cluster.start_worker(device)
            cluster.wait_ready(r, workers - started)
            started = workers
            client.infer("add", TINY, result_timeout_s=120)
            background = idle(r, seconds)
            idle_cpu_per_worker = background.cpu_s / background.seconds / workers
            for path, callers, many in (
                ("tiny, inline, one a message", 2 * workers, False),
                (f"tiny, {CHUNK} a message (map)", 4, True),
            ):
                usage, answered = Usage.measure(r, lambda c=callers, m=many: closed_loop(client, c, seconds, m))
                rate = answered / usage.seconds
                _, _, cpu_us = cost[path]
                measured = usage.cpu_s / usage.seconds
                idle_share = workers * idle_cpu_per_worker
                at_load_us = (measured - idle_share) / rate * 1e6  # what a job cost at this load
                rows.append(
                    {
                        "workers": workers,
                        "path": path,
                        "jobs/s": rate,
                        "Redis CPU": measured,
                        "model": rate * cpu_us / 1e6 + idle_share,
                        "idle share": idle_share,
                        "commands/job": sum(usage.calls.values()) / max(answered, 1),
                        "CPU us/job": at_load_us,
                        "ceiling (1 job)": (1 - idle_share) / (cpu_us / 1e6),
                        "ceiling (load)": (1 - idle_share) / (at_load_us / 1e6),
                    }
                )
        r.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2000, help="jobs per path for the cost per job")
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each idle and loaded stretch")
    args = parser.parse_args()
    os.environ.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT=str(max(WORKER_COUNTS)))
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build(repo, ["add", "identity_uint8", "mlp"])
        cost = per_job_costs(repo, Path(tmp), args.jobs)
        print("\nWhat a job costs Redis (one worker, each job waited for; idle background subtracted)")
        print(
            f"{'path':<36}{'commands':>10}{'bytes':>12}{'CPU us':>9}{'jobs/s/core':>13}"
            + "".join(f"{f'devices @{t} ms':>16}" for t in DEVICE_TIMES_MS)
        )
        for path, (commands, net, cpu_us) in cost.items():
            per_core = 1e6 / cpu_us
            devices = "".join(f"{per_core * t / 1000:>16.0f}" for t in DEVICE_TIMES_MS)
            print(f"{path:<36}{commands:>10.1f}{net:>12.0f}{cpu_us:>9.0f}{per_core:>13.0f}{devices}")
        rows = simulate(repo, args.seconds, cost)
    print(
        "\nThe model against W workers on this machine: Redis CPU (fraction of one core) measured and as\n"
        "the model predicts it (jobs/s x the one-job cost above + W x idle); what a job cost at this\n"
        "load; the jobs/s one core would carry at the one-job cost and at this load's"
    )
    columns = list(rows[0])
    widths = [8, 32] + [max(14, len(c) + 2) for c in columns[2:]]
    print("".join(f"{c:>{w}}" if i > 1 else f"{c:<{w}}" for i, (c, w) in enumerate(zip(columns, widths))))
    for row in rows:
        print("".join(
            f"{v:<{w}}" if i < 2 else f"{v:>{w}.3f}" if v < 10 else f"{v:>{w}.0f}"
            for i, (v, w) in enumerate(zip(row.values(), widths))
        ))  # fmt: skip


if __name__ == "__main__":
    main()
