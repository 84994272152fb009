"""Soak: 100,000 jobs with runtime-allocated outputs through a worker's executor, in this process.

    python -m bench.soak [--jobs N]

Reports device memory (in use, peak, live allocations) before and after, and the process's
resident memory, so a leak shows as growth. Issue 8 asks for in-use back to its baseline.
"""

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from acl_core import Device
from examples.build_models import build
from producer import Client, Settings
from producer.connection import REDIS_OPTIONS
from producer.malloc import keep_message_buffers
from worker.embedded import RedisServer
from worker.executor import Executor
from worker.models import ModelCache, ModelRepository


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    os.environ.setdefault("ACLQ_PROVIDER", "cpu")
    keep_message_buffers()
    with tempfile.TemporaryDirectory() as repo, RedisServer() as server:
        build(Path(repo), ["nonzero"])
        settings = Settings(redis_url=server.url, model_repo=repo, result_ttl_s=5, payload_ttl_s=60, inline_max_kb=0)
        with Device(0) as device, Client(settings) as client:
            conn = redis.Redis.from_url(server.url, **REDIS_OPTIONS)
            executor = Executor(settings, device, ModelCache(device, ModelRepository(repo), 1 << 30), conn, "soak")
            rng = np.random.default_rng(0)
            x = (rng.random((8, 8)) > 0.5).astype(np.float32)
            warm = client.submit("nonzero", {"x": x})
            executor.run([(warm.id, None)])
            before, rss_before, started = device.memory(), rss_mib(), time.perf_counter()
            for _ in range(args.jobs):
                job = client.submit("nonzero", {"x": x})
                executor.run([(job.id, None)])
            elapsed = time.perf_counter() - started
            np.testing.assert_array_equal(job.result(1)["indices"], np.nonzero(x))
            after = device.memory()
    print(f"{args.jobs} jobs in {elapsed:.1f} s ({args.jobs / elapsed:.0f} jobs/s), done={executor.counters.done}")
    print(f"device memory in use: {before.in_use} -> {after.in_use} B; live allocations {before.live} -> {after.live}")
    print(f"device memory peak: {after.peak} B; process max RSS: {rss_before:.0f} -> {rss_mib():.0f} MiB")
    print("baseline kept" if (after.in_use, after.live) == (before.in_use, before.live) else "LEAK")


if __name__ == "__main__":
    main()
