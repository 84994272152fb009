"""What a job costs Redis, per path: the commands each side sends, counted by Redis itself.

    python -m bench.round_trips [--jobs N]

One embedded Redis, one worker (device 0, dynamic batching off: no config.json). For each
path, N jobs go through a Client one after the other (each waited for before the next, so the
counts are per job, not per gathered batch); ``CONFIG RESETSTAT`` before and ``INFO
commandstats`` after give every command Redis served, divided by N. The worker's background
(doorbell waits that time out, heartbeats, kombu's restore sweeps, lease renewals) is measured
over an idle stretch as long as the run and subtracted. Paths: a tiny job (add), one submit a
job; the same sent 32 a message (``submit_many``); 1 MiB and 16 MiB in and out (identity_uint8).
Each command is listed with the side that sends it (docs/performance.md explains each).
"""

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from examples.build_models import build
from producer import Client, Settings
from producer.connection import redis_client
from worker.local import LocalCluster

#: who sends each command: a client, a worker, or a Lua script (commands run inside scripts are
#: counted by Redis like any other; several names are sent both ways)
SIDE = {
    "multi": "both", "exec": "both", "set": "prod+lua", "lpush": "producer", "ltrim": "prod+lua",
    "blpop": "producer", "lpop": "producer", "unlink": "producer", "lindex": "lua", "blmpop": "producer",
    "get": "work+lua", "brpop": "worker", "rpop": "work+lua",
    "lmpop": "lua", "evalsha": "worker", "rpush": "work+lua", "expire": "work+lua", "hdel": "worker",
    "zrem": "worker", "zadd": "lua", "hset": "work+lua", "del": "work+lua", "exists": "lua",
    "hincrby": "lua", "hmget": "lua", "rename": "lua", "zrange": "worker", "getdel": "producer",
}  # fmt: skip
CHUNK = 32


def commandstats(r: redis.Redis) -> Counter[str]:
    stats = r.info("commandstats")
    return Counter({name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()})


def redis_cpu_s(r: redis.Redis) -> float:
    """CPU seconds the Redis server has used, user and system."""
    cpu = r.info("cpu")
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def per_job(r: redis.Redis, jobs: int, run: Callable[[], None]) -> tuple[Counter[str], float, float]:
    """Commands per job, seconds for the run, and Redis CPU microseconds per job."""
    r.config_resetstat()
    cpu = redis_cpu_s(r)
    started = time.monotonic()
    run()
    elapsed = time.monotonic() - started
    busy_cpu = redis_cpu_s(r) - cpu
    busy = commandstats(r)
    r.config_resetstat()
    cpu = redis_cpu_s(r)
    time.sleep(elapsed)  # the same stretch idle: the worker's background alone
    idle_cpu = redis_cpu_s(r) - cpu
    idle = commandstats(r)
    calls = Counter({k: (busy[k] - idle[k]) / jobs for k in busy if not k.startswith(("config", "info"))})
    cpu_us = (busy_cpu - idle_cpu) / jobs * 1e6
    return Counter({k: v for k, v in calls.items() if v >= 0.005}), elapsed, cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build(repo, ["add", "identity_uint8"])
        settings = Settings(model_repo=str(repo), namespace="rt")
        with LocalCluster(settings, devices=[0]) as cluster, Client(cluster.settings) as client:
            r = redis_client(cluster.settings)
            tiny = {"a": np.ones((2, 3), np.float32), "b": np.ones((2, 3), np.float32)}
            mib = {"x": np.zeros((1024, 1024), np.uint8)}
            big = {"x": np.zeros((4096, 4096), np.uint8)}
            client.infer("add", tiny, result_timeout_s=60)  # models loaded before counting
            client.infer("identity_uint8", mib, result_timeout_s=60)

            def one_by_one(model: str, feeds: dict[str, np.ndarray], n: int) -> None:
                for _ in range(n):
                    client.infer(model, feeds, result_timeout_s=60)

            def chunked(n: int) -> None:
                for _ in range(n // CHUNK):
                    for job in client.submit_many("add", [tiny] * CHUNK):
                        job.result(60)

            n, big_n = args.jobs, max(args.jobs // 50, 5)
            paths = {
                "tiny, one a message": (lambda: one_by_one("add", tiny, n), n),
                f"tiny, {CHUNK} a message": (lambda: chunked(n // CHUNK * CHUNK), n // CHUNK * CHUNK),
                "1 MiB in + out": (lambda: one_by_one("identity_uint8", mib, n // 5), n // 5),
                "16 MiB in + out": (lambda: one_by_one("identity_uint8", big, big_n), big_n),
            }
            rows, cpu = {}, {}
            for name, (run, count) in paths.items():
                rows[name], elapsed, cpu[name] = per_job(r, count, run)
                print(f"{name}: {count} jobs in {elapsed:.1f} s")
            r.close()
    commands = sorted({c for row in rows.values() for c in row}, key=lambda c: (SIDE.get(c, "?"), c))
    print(f"\n{'command':<16}{'side':<10}" + "".join(f"{name:>22}" for name in rows))
    for command in commands:
        cells = "".join(f"{rows[name].get(command, 0):>22.2f}" for name in rows)
        print(f"{command:<16}{SIDE.get(command, '?'):<10}{cells}")
    print(f"{'total':<26}" + "".join(f"{sum(row.values()):>22.2f}" for row in rows.values()))
    print(f"{'Redis CPU us/job':<26}" + "".join(f"{cpu[name]:>22.0f}" for name in rows))


if __name__ == "__main__":
    main()
