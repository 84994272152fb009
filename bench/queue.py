"""End-to-end queue benchmark: aclq vs plain Celery and a raw Redis echo, same Redis, one run.

    python -m bench.queue [--rounds N] [--json FILE]

Starts a private Redis, one aclq worker (device 0), one plain Celery worker (solo pool, like
aclq's) and a raw echo loop; then measures, interleaved:
  * tiny jobs: aclq `add` round trip vs a plain Celery no-op round trip (p50/p99, jobs/s);
  * 1 MiB in + 1 MiB out: aclq identity_uint8 vs a raw LPUSH/BRPOP echo vs plain Celery echo
    with the msgpack serializer.
Targets (issue 3): tiny-job p50 no worse than the Celery no-op; 1 MiB within 2x the raw echo.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import redis

from bench import baselines
from examples.build_models import build
from producer import Client, Settings
from producer.dispatch import REDIS_OPTIONS
from producer.embedded import RedisServer
from producer.malloc import keep_message_buffers
from worker.local import LocalCluster


def _latencies_ms(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def _throughput(submit: Callable[[], object], wait: Callable[[object], object], n: int) -> float:
    started = time.perf_counter()
    handles = [submit() for _ in range(n)]
    for handle in handles:
        wait(handle)
    return n / (time.perf_counter() - started)


def _row(name: str, lat: list[float], jobs_s: float | None = None) -> dict[str, float | str | None]:
    q = statistics.quantiles(lat, n=100)
    return {"case": name, "p50_ms": statistics.median(lat), "p99_ms": q[98], "jobs_s": jobs_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300, help="round trips per latency case")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("ACLQ_PROVIDER", "cpu")
    keep_message_buffers()  # this process runs aclq's client and the baselines' clients alike
    with tempfile.TemporaryDirectory() as repo, RedisServer() as server:
        build(Path(repo), ["add", "identity_uint8"])
        env = {**os.environ, "BENCH_REDIS_URL": server.url}
        baselines.configure(server.url)
        plain = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.baselines", "-q", "worker", "-P", "solo", "-l", "WARNING",
             "--without-gossip", "--without-mingle"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        echo = subprocess.Popen([sys.executable, "-m", "bench.baselines", "echo", server.url])
        settings = Settings(redis_url=server.url, model_repo=repo)
        try:
            with LocalCluster(settings, devices=[0]), Client(settings) as client:
                rows = _measure(client, redis.Redis.from_url(server.url, **REDIS_OPTIONS), args.rounds)
        finally:
            plain.terminate()
            echo.terminate()
            plain.wait()
            echo.wait()
    _print(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _measure(client: Client, r: redis.Redis, rounds: int) -> list[dict[str, float | str | None]]:
    a = np.ones((2, 3), np.float32)
    tiny = {"a": a, "b": a}
    mib = {"x": np.random.default_rng(0).integers(0, 255, (1024, 1024), dtype=np.uint8)}
    raw = mib["x"].tobytes()
    noop, echo = baselines.noop, baselines.echo

    def raw_echo() -> None:
        r.lpush(baselines.ECHO_IN, raw)
        r.brpop([baselines.ECHO_OUT])

    cases = {
        "aclq add (tiny)": lambda: client.infer("add", tiny, result_timeout_s=30),
        "celery no-op": lambda: noop.delay().get(timeout=30),
        "aclq 1 MiB echo": lambda: client.infer("identity_uint8", mib, result_timeout_s=30),
        "redis LPUSH/BRPOP 1 MiB": raw_echo,
        "celery msgpack 1 MiB echo": lambda: echo.delay(raw).get(timeout=30),
    }
    for fn in cases.values():  # warm up: models loaded, connections open
        _latencies_ms(fn, 20)
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(5):  # interleaved, so noise hits every case alike
        for name, fn in cases.items():
            samples[name] += _latencies_ms(fn, rounds // 5)
    jobs_s = {
        "aclq add (tiny)": _throughput(lambda: client.submit("add", tiny), lambda j: j.result(30), 1000),
        "celery no-op": _throughput(noop.delay, lambda h: h.get(timeout=30), 1000),
    }
    started = time.perf_counter()
    for _ in client.map("add", [tiny] * 2000, window=64):  # several jobs per Celery message
        pass
    mapped = {"case": "aclq add via map, window 64", "p50_ms": None, "p99_ms": None}
    mapped["jobs_s"] = 2000 / (time.perf_counter() - started)
    return [_row(name, lat, jobs_s.get(name)) for name, lat in samples.items()] + [mapped]


def _print(rows: list[dict[str, float | str | None]]) -> None:
    by = {r["case"]: r for r in rows}
    print(f"{'case':<30} {'p50 ms':>8} {'p99 ms':>8} {'jobs/s':>8}")
    for r in rows:
        jobs = f"{r['jobs_s']:>8.0f}" if r["jobs_s"] else f"{'':>8}"
        lat = f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}" if r["p50_ms"] is not None else f"{'':>17}"
        print(f"{r['case']:<30} {lat} {jobs}")

    def ratio(a: str, b: str, key: str) -> float:
        return float(by[a][key]) / float(by[b][key])  # type: ignore[arg-type]

    print(
        f"tiny p50 aclq / celery no-op:        {ratio('aclq add (tiny)', 'celery no-op', 'p50_ms'):.2f}  (target <= 1)"
    )
    print(f"tiny jobs/s aclq / celery no-op:     {ratio('aclq add (tiny)', 'celery no-op', 'jobs_s'):.2f}")
    mapped = ratio("aclq add via map, window 64", "celery no-op", "jobs_s")
    print(f"tiny jobs/s aclq map / celery no-op: {mapped:.2f}  (issue 5 target >= 3)")
    echo_ratio = ratio("aclq 1 MiB echo", "redis LPUSH/BRPOP 1 MiB", "p50_ms")
    print(f"1 MiB p50 aclq / raw redis echo:     {echo_ratio:.2f}  (target <= 2)")
    print(f"1 MiB p50 aclq / celery msgpack:     {ratio('aclq 1 MiB echo', 'celery msgpack 1 MiB echo', 'p50_ms'):.2f}")


if __name__ == "__main__":
    main()
