"""Where inline stops paying: one job's round trip and Redis CPU, inline against claim check.

    python -m bench.inline [--rounds N]

One embedded Redis, one worker (device 0). For each payload size (identity_uint8, the same bytes
in and out), two clients of the same run send jobs one at a time: one sends every job inline
(the envelope inside the Celery message), the other every job by claim check (the envelope under
its own key). The cases are interleaved in blocks, so the machine's noise hits them alike. Printed:
p50 of ``Client.infer`` and Redis CPU per job (``INFO cpu``), for each path, and their ratios;
docs/performance.md explains the default threshold (``ACLQ_INLINE_MAX_KB``) they gave.
"""

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.round_trips import redis_cpu_s
from examples.build_models import build
from producer import Client, Settings
from producer.connection import redis_client
from worker.local import LocalCluster

SIZES_KIB = [1, 4, 16, 64, 256, 1024]
BLOCKS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="jobs per size and path")
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES_KIB, help="payload sizes, KiB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build(repo, ["identity_uint8"])
        settings = Settings(model_repo=str(repo), namespace="inline")
        with LocalCluster(settings, devices=[0]) as cluster:
            paths = {
                "inline": Client(replace(cluster.settings, inline_max_kb=1 << 20)),
                "claim check": Client(replace(cluster.settings, inline_max_kb=0)),
            }
            r = redis_client(cluster.settings)
            lat: dict[tuple[int, str], list[float]] = {}
            cpu: dict[tuple[int, str], float] = {}
            for size in args.sizes:
                feeds = {"x": np.arange(size << 10, dtype=np.uint8).reshape(size, 1024)}
                for client in paths.values():
                    client.infer("identity_uint8", feeds, result_timeout_s=60)  # warm
                for _ in range(BLOCKS):
                    for name, client in paths.items():
                        times = lat.setdefault((size, name), [])
                        used = redis_cpu_s(r)
                        for _ in range(args.rounds // BLOCKS):
                            started = time.perf_counter()
                            out = client.infer("identity_uint8", feeds, result_timeout_s=60)
                            times.append((time.perf_counter() - started) * 1000)
                        cpu[size, name] = cpu.get((size, name), 0.0) + redis_cpu_s(r) - used
                        assert np.array_equal(out["y"], feeds["x"])
            r.close()
            for client in paths.values():
                client.close()
    n = args.rounds // BLOCKS * BLOCKS
    print(f"{'payload':>9} {'inline p50 ms':>14} {'claim p50 ms':>13} {'ratio':>6}"
          f" {'inline Redis us':>16} {'claim Redis us':>15} {'ratio':>6}")  # fmt: skip
    for size in args.sizes:
        p50 = {name: statistics.median(lat[size, name]) for name in paths}
        us = {name: cpu[size, name] / n * 1e6 for name in paths}
        inline, claim = p50["inline"], p50["claim check"]
        print(
            f"{size:>6} KiB {inline:>14.2f} {claim:>13.2f} {inline / claim:>6.2f}"
            f" {us['inline']:>16.0f} {us['claim check']:>15.0f} {us['inline'] / us['claim check']:>6.2f}"
        )


if __name__ == "__main__":
    main()
