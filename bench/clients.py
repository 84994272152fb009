"""The client's own cost a job: ``Client`` and ``AsyncClient`` side by side.

    python -m bench.clients [--jobs N]

One embedded Redis, one worker (device 0), tiny jobs (``add``). Each client, in interleaved
blocks: ``infer`` one job at a time (its p50, and the client process's CPU a job), ``submit``
of N jobs (CPU a job), then the waits for those N (the sync client one after another, the
asyncio one gathered on its event loop). For an A/B of two commits, run it from each checkout
in turn (``PYTHONPATH=<checkout>``): the CPU figures are the client's alone, so the worker's
noise touches them least.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

from examples.build_models import build
from producer import AsyncClient, Client, Settings
from worker.local import LocalCluster

BLOCKS = 5
FEEDS = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}
#: a figure's samples by case
Rows = dict[str, list[float]]


def measure(rows: Rows, case: str, jobs: int, run: Callable[[], object]) -> None:
    """Add ``run()``'s CPU a job (µs) to ``rows[case]``."""
    started = time.process_time()
    run()
    rows[case].append((time.process_time() - started) / jobs * 1e6)


def sync_block(client: Client, jobs: int, cpu: Rows, p50: Rows) -> None:
    latencies: list[float] = []

    def infer() -> None:
        for _ in range(jobs):
            started = time.perf_counter()
            client.infer("add", FEEDS, result_timeout_s=60)
            latencies.append(time.perf_counter() - started)

    measure(cpu, "infer", jobs, infer)
    p50["infer"].append(statistics.median(latencies) * 1e3)
    submitted = []
    measure(cpu, "submit", jobs, lambda: submitted.extend(client.submit("add", FEEDS) for _ in range(jobs)))
    measure(cpu, "waits of the submitted", jobs, lambda: [job.result(60) for job in submitted])


def async_block(client: AsyncClient, jobs: int, cpu: Rows, p50: Rows, loop: asyncio.AbstractEventLoop) -> None:
    latencies: list[float] = []

    def run(work: Callable[[], Awaitable[object]]) -> Callable[[], object]:
        return lambda: loop.run_until_complete(work())

    async def infer() -> None:
        for _ in range(jobs):
            started = time.perf_counter()
            await client.infer("add", FEEDS, result_timeout_s=60)
            latencies.append(time.perf_counter() - started)

    submitted = []

    async def submit() -> None:
        submitted.extend([await client.submit("add", FEEDS) for _ in range(jobs)])

    async def gather() -> None:
        await asyncio.gather(*(job.result(60) for job in submitted))

    measure(cpu, "infer", jobs, run(infer))
    p50["infer"].append(statistics.median(latencies) * 1e3)
    measure(cpu, "submit", jobs, run(submit))
    measure(cpu, "waits of the submitted", jobs, run(gather))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs a case and client")
    args = parser.parse_args()
    jobs = max(args.jobs // BLOCKS, 1)
    cpu = {name: defaultdict(list) for name in ("Client", "AsyncClient")}
    p50 = {name: defaultdict(list) for name in ("Client", "AsyncClient")}
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), ["add"])
        with LocalCluster(Settings(model_repo=tmp, namespace="clients"), devices=[0]) as cluster:
            loop = asyncio.new_event_loop()
            sync_client, async_client = Client(cluster.settings), AsyncClient(cluster.settings)
            sync_block(sync_client, 20, defaultdict(list), defaultdict(list))  # warm
            async_block(async_client, 20, defaultdict(list), defaultdict(list), loop)
            for _ in range(BLOCKS):
                sync_block(sync_client, jobs, cpu["Client"], p50["Client"])
                async_block(async_client, jobs, cpu["AsyncClient"], p50["AsyncClient"], loop)
            sync_client.close()
            loop.run_until_complete(async_client.aclose())
            loop.close()
    print(f"the client's CPU a job: the median of {BLOCKS} blocks of {jobs} jobs")
    print(f"{'client':<12} {'infer us':>9} {'infer p50 ms':>13} {'submit us':>10} {'a wait us':>10}")
    for name in cpu:
        rows = {case: statistics.median(values) for case, values in cpu[name].items()}
        print(
            f"{name:<12} {rows['infer']:>9.0f} {statistics.median(p50[name]['infer']):>13.2f}"
            f" {rows['submit']:>10.0f} {rows['waits of the submitted']:>10.0f}"
        )


if __name__ == "__main__":
    main()
