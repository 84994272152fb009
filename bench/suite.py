"""The benchmark suite: aclq beside its baselines, all measured in one run, printed as one table.

    python -m bench.suite [--rounds N] [--jobs N] [--json FILE]          (`make bench` runs it)

Latency, closed loop (one job at a time; the cases interleaved, so noise hits them alike), one
worker per system: payloads tiny (add), 1 MiB and 16 MiB (identity_uint8), and models add, mlp
(1 row) and conv (1 image), each through
  * aclq (``Client.infer``),
  * plain Celery: a task carrying msgpack tensors that runs the model with ONNX Runtime
    (``bench.baselines.infer``; for tiny, also a no-op task),
  * a raw Redis LPUSH/BRPOP echo of the same bytes (the floor for a round trip),
  * ONNX Runtime in-process (the limit).
Throughput:
  * tiny jobs/s, one worker each: aclq one submit per job, aclq ``map`` (window 64), plain
    Celery no-op (the median of BLOCKS interleaved blocks);
  * dynamic batching, two workers (devices 0 and 1), one-row jobs of mlp_large (512 -> 1024 ->
    1024 -> 10, 6 MB of weights), batching off (no config.json) and on (64 rows, no delay): kept in
    flight by IN_FLIGHT threads of single ``submit``s; a backlog queued while the workers are
    stopped, then drained (the workers' rate alone: once every worker is answering, its
    producers reading the answers only after it; the median of DRAINS); sent at once, one a
    message and CHUNK a message (producers and workers sharing the machine); at one fixed
    offered load both can carry (half the unbatched sent-at-once rate),
    with p50/p99 of enqueue -> answer; beside the engine's own gain (ONNX Runtime in-process, one
    thread, rows/s at batch 32 over batch 1) and the small mlp's (batching must never make
    a model slower).
Targets (issue 16) are printed as ratios of figures from this run.
"""

import argparse
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import redis

from bench import baselines
from examples.build_models import build
from producer import Client, Settings, keys, transport
from producer.connection import REDIS_OPTIONS
from producer.dispatch import celery_config
from producer.malloc import keep_message_buffers
from producer.wire import PRIORITIES
from worker.embedded import RedisServer
from worker.local import LocalCluster

MODELS = ["add", "mlp", "conv", "identity_uint8"]
#: producer processes offering the mlp load (one process cannot send messages fast enough)
PRODUCERS = 2
#: jobs a message when a producer sends them in chunks (``submit_many``, as ``map`` does)
CHUNK = 32
#: interleaved blocks of the latency and tiny-throughput cases
BLOCKS = 5
Row = dict[str, Any]


def quantiles(lat_ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(lat_ms, n=100)
    return {"p50_ms": statistics.median(lat_ms), "p99_ms": q[98]}


def progress(what: str) -> None:
    print(f"[bench] {what}", file=sys.stderr, flush=True)


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def payloads() -> dict[str, tuple[str, dict[str, np.ndarray]]]:
    """Case -> (model, inputs)."""
    rng = np.random.default_rng(0)
    a = np.ones((2, 3), np.float32)
    return {
        "tiny (add)": ("add", {"a": a, "b": a}),
        "mlp, 1 row": ("mlp", {"x": rng.standard_normal((1, 64)).astype(np.float32)}),
        "conv, 1 image": ("conv", {"x": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)}),
        "1 MiB (identity)": ("identity_uint8", {"x": rng.integers(0, 255, (1024, 1024), dtype=np.uint8)}),
        "16 MiB (identity)": ("identity_uint8", {"x": rng.integers(0, 255, (4096, 4096), dtype=np.uint8)}),
    }


def latency(client: Client, r: redis.Redis, repo: Path, rounds: int) -> list[Row]:
    cases: dict[tuple[str, str], Callable[[], object]] = {}
    for case, (model, inputs) in payloads().items():
        raw = b"".join(a.tobytes() for a in inputs.values())
        packed = baselines.pack(inputs)
        session = baselines.session(str(repo / model / "1" / "model.onnx"))

        def raw_echo(raw: bytes = raw) -> None:
            r.lpush(baselines.ECHO_IN, raw)
            r.brpop([baselines.ECHO_OUT])

        cases[case, "aclq"] = lambda m=model, i=inputs: client.infer(m, i, result_timeout_s=60)
        cases[case, "celery + msgpack"] = lambda m=model, p=packed: baselines.infer.delay(m, p).get(timeout=60)
        if case == "tiny (add)":
            cases[case, "celery no-op"] = lambda: baselines.noop.delay().get(timeout=60)
        if model in ("add", "identity_uint8"):
            cases[case, "redis echo"] = raw_echo
        cases[case, "onnxruntime in-process"] = lambda s=session, i=inputs: s.run(None, i)
    for (case, system), fn in cases.items():  # warm up: models loaded, connections open
        progress(f"warm-up: {case}, {system}")
        timed(fn, 5)
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in cases}
    progress("latency")
    for _ in range(BLOCKS):
        for (case, system), fn in cases.items():
            n = max(rounds // BLOCKS // (10 if case.startswith("16 MiB") else 1), 4)
            samples[case, system] += timed(fn, n)
    return [{"section": "latency", "case": c, "system": s, **quantiles(lat)} for (c, s), lat in samples.items()]


def tiny_throughput(client: Client, jobs: int) -> list[Row]:
    """Tiny jobs/s of each system: the median of BLOCKS interleaved blocks of ``jobs / BLOCKS``
    (twice that for ``map``), so that a neighbour's burst on this shared machine hits every
    system, not the one that ran then."""
    a = np.ones((2, 3), np.float32)
    tiny = {"a": a, "b": a}
    n = max(jobs // BLOCKS, 1)

    def one_by_one() -> None:
        for job in [client.submit("add", tiny) for _ in range(n)]:
            job.result(60)

    def mapped() -> None:
        for _ in client.map("add", [tiny] * (2 * n), window=64):
            pass

    def noop() -> None:
        for handle in [baselines.noop.delay() for _ in range(n)]:
            handle.get(timeout=60)

    runs = {"aclq, submit per job": (one_by_one, n), "aclq, map window 64": (mapped, 2 * n), "celery no-op": (noop, n)}
    rates: dict[str, list[float]] = {system: [] for system in runs}
    progress("tiny throughput")
    for _ in range(BLOCKS):
        for system, (run, count) in runs.items():
            started = time.perf_counter()
            run()
            rates[system].append(count / (time.perf_counter() - started))
    return [
        {"section": "throughput", "case": "tiny", "system": system, "jobs_s": statistics.median(rates[system])}
        for system in runs
    ]


#: the dynamic-batching model: an MLP whose one-thread engine gains about 3x at batch 32
BATCH_MODEL, BATCH_WIDTH = "mlp_large", 512
#: client threads keeping single-row jobs in flight (PRODUCERS processes share them)
IN_FLIGHT = 32
#: interleaved rounds of the engine's own batch gain
ENGINE_ROUNDS = 7
#: drains of a queued backlog a case, the median reported: a batched one lasts half a second
DRAINS = 3

#: one job as a producer saw it: enqueued and answered (Unix seconds), jobs executed together, device
Answered = tuple[float, float, int, int | None]


def rows_of(model: str, jobs: int, seed: int) -> np.ndarray:
    width = BATCH_WIDTH if model == BATCH_MODEL else 64
    return np.random.default_rng(seed).standard_normal((jobs, 1, width)).astype(np.float32)


def produce(
    url: str, model: str, jobs: int, rate: float | None, chunk: int, start_at: float, seed: int, hold: str = ""
) -> list[Answered]:
    """One producer process: ``jobs`` one-row jobs, ``chunk`` jobs a message, at ``rate`` jobs/s
    (None: at once) from ``start_at``; reads their answers (once an entry is pushed onto the
    list ``hold``, where one is named); returns (enqueued, answered, batch_jobs, device) per
    job, in Unix seconds (the answer's time the worker's)."""
    keep_message_buffers()
    x = rows_of(model, jobs, seed)
    with Client(url) as client:
        time.sleep(max(0.0, start_at - time.time()))
        sent = []
        for i in range(0, jobs, chunk):
            if rate is not None:
                time.sleep(max(0.0, start_at + i / rate - time.time()))
            now = time.time()
            sent += [(now, job) for job in client.submit_many(model, [{"x": row} for row in x[i : i + chunk]])]
        if hold:
            with redis.Redis.from_url(url, **REDIS_OPTIONS) as r:  # no socket timeout: the drain may be long
                r.blpop([hold], 0)
        out = []
        for enqueued, job in sent:
            details = job.details(120)
            out.append((enqueued, enqueued + details.timings["total_ms"] / 1000, details.batch_jobs, details.device))
        return out


def keep_in_flight(url: str, model: str, jobs: int, threads: int, start_at: float, seed: int) -> list[Answered]:
    """One producer process: ``threads`` threads each submitting one row and waiting for it, until
    ``jobs`` are answered (an application's many concurrent single ``submit``s)."""
    keep_message_buffers()
    x = rows_of(model, jobs, seed)
    with Client(url) as client:
        time.sleep(max(0.0, start_at - time.time()))

        def one(row: np.ndarray) -> Answered:
            enqueued = time.time()
            details = client.submit(model, {"x": row}).details(120)
            return enqueued, time.time(), details.batch_jobs, details.device

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, x))


def offered(
    url: str, model: str, jobs: int, rate: float | None, chunk: int = 1, in_flight: int = 0
) -> dict[str, float]:
    """One-row jobs from PRODUCERS processes, sent at once, at ``rate`` jobs/s, or kept
    ``in_flight`` by that many threads: achieved jobs/s, p50/p99 enqueue -> answer, mean batch."""
    with multiprocessing.get_context("spawn").Pool(PRODUCERS) as pool:
        return summary(send(pool, url, model, jobs, rate, chunk, in_flight).get())


def send(
    pool: Any, url: str, model: str, jobs: int, rate: float | None, chunk: int = 1, in_flight: int = 0, hold: str = ""
) -> Any:
    """Start :func:`offered`'s producers on ``pool``; their result: :data:`Answered` per job, by
    producer."""
    start_at = time.time() + 1.0  # every producer connected before the first job
    per = jobs // PRODUCERS
    each = None if rate is None else rate / PRODUCERS
    if in_flight:
        args = [(url, model, per, in_flight // PRODUCERS, start_at, seed) for seed in range(PRODUCERS)]
        return pool.starmap_async(keep_in_flight, args)
    args = [(url, model, per, each, chunk, start_at, seed, hold) for seed in range(PRODUCERS)]
    return pool.starmap_async(produce, args)


def summary(parts: list[list[Answered]], drained: bool = False) -> dict[str, float]:
    """jobs/s from the first job enqueued to the last answered (``drained``: the jobs answered
    once every device has answered one, over that time: the workers' rate alone, none of them
    still starting), p50/p99 enqueue -> answer, mean batch."""
    done = [row for part in parts for row in part]
    last = max(a for _, a, _, _ in done)
    if drained:
        first = max(min(a for _, a, _, d in done if d == device) for device in {d for *_, d in done})
        rate = sum(a > first for _, a, _, _ in done) / (last - first)
    else:
        rate = len(done) / (last - min(e for e, _, _, _ in done))
    return {
        "jobs_s": rate,
        **quantiles([(a - e) * 1000 for e, a, _, _ in done]),
        "mean_batch": statistics.fmean(b for _, _, b, _ in done),
    }


def queued(cluster: LocalCluster, model: str, jobs: int) -> dict[str, float]:
    """A backlog already queued: one-row jobs, one a message, enqueued while the workers are
    stopped; then they start and drain it (jobs/s once every worker is answering, to the last
    answer), the producers reading the answers only once it is drained: the workers' rate
    alone, not shared with producers waiting beside them on the same cores."""
    url = cluster.settings.redis_url or ""
    devices = list(cluster.workers)
    for device in devices:
        cluster.stop_worker(device)
    queue = keys.shared_queue(cluster.settings.namespace)
    unacked = transport.Books.of(celery_config(cluster.settings)["broker_transport_options"]).unacked
    hold = f"bench:hold:{uuid.uuid4().hex}"

    def waiting() -> int:
        return sum(r.llen(keys.queue_key(queue, p)) for p in PRIORITIES)

    with redis.Redis.from_url(url) as r, multiprocessing.get_context("spawn").Pool(PRODUCERS) as pool:
        result = send(pool, url, model, jobs, None, hold=hold)
        # a benchmark's polls: the producers report nothing until they read the answers
        while waiting() < jobs // PRODUCERS * PRODUCERS:
            time.sleep(0.05)
        cluster.start_workers(devices)
        while waiting() or r.hlen(unacked):  # a message leaves kombu's books with its answer
            time.sleep(0.02)
        r.rpush(hold, *[1] * PRODUCERS)
        return summary(result.get(), drained=True)


def engine_gain(repo: Path) -> list[Row]:
    """The batching model in-process, one thread: rows/s at batch 1 and at batch 32, each the
    median of ENGINE_ROUNDS interleaved half-second rounds (a neighbour's burst hits both)."""
    session = baselines.session(str(repo / BATCH_MODEL / "1" / "model.onnx"))
    feeds = {batch: rows_of(BATCH_MODEL, batch, 0).reshape(batch, BATCH_WIDTH) for batch in (1, 32)}
    rates: dict[int, list[float]] = {batch: [] for batch in feeds}
    for _ in range(ENGINE_ROUNDS):
        for batch, x in feeds.items():
            session.run(None, {"x": x})
            runs, started = 0, time.perf_counter()
            while time.perf_counter() - started < 0.5:
                session.run(None, {"x": x})
                runs += 1
            rates[batch].append(runs * batch / (time.perf_counter() - started))
    return [{"section": "engine", "case": f"{BATCH_MODEL}, batch {batch}", "system": "onnxruntime in-process",
             "jobs_s": statistics.median(rates[batch])} for batch in feeds]  # fmt: skip


def batching_throughput(settings: Settings, repos: dict[str, Path], model: str, jobs: int, full: bool) -> list[Row]:
    """Per repository (batching off first, then on), two workers: ``model``'s one-row jobs as a
    queued backlog and sent at once, one a message; with ``full``, also kept in flight by IN_FLIGHT
    threads, sent at once CHUNK a message, and at the fixed load of half what unbatched carried
    sent at once (room to spare)."""
    rows: list[Row] = []
    load: float | None = None
    for label, repo in repos.items():
        with LocalCluster(replace(settings, model_repo=str(repo)), devices=[0, 1]) as cluster:
            url, system = cluster.settings.redis_url or "", f"aclq, batching {label}"
            offered(url, model, 200, None)  # warm up: the model loaded on both workers
            progress(f"{model}, queued backlog, batching {label}")
            drains = sorted((queued(cluster, model, jobs) for _ in range(DRAINS)), key=lambda d: d["jobs_s"])
            rows.append({"section": "throughput", "case": f"{model}, queued backlog", "system": system,
                         **drains[DRAINS // 2]})  # fmt: skip
            cases = [(f"{model}, sent at once", {})]
            if full:
                cases += [(f"{model}, {IN_FLIGHT} in flight", {"in_flight": IN_FLIGHT}),
                          (f"{model}, sent at once, {CHUNK}/msg", {"chunk": CHUNK})]  # fmt: skip
            for case, how in cases:
                progress(f"{case}, batching {label}")
                rows.append({"section": "throughput", "case": case, "system": system,
                             **offered(url, model, jobs, None, **how)})  # fmt: skip
            if full:
                load = load or 0.5 * rows[1]["jobs_s"]
                progress(f"{model} at {load:.0f} jobs/s, batching {label}")
                case = f"{model}, offered {load:.0f} jobs/s"
                rows.append(
                    {"section": "throughput", "case": case, "system": system, **offered(url, model, jobs, load)}
                )
    return rows


def ratios(rows: list[Row]) -> list[Row]:
    def get(section: str, case: str, system: str, key: str) -> float:
        (row,) = [r for r in rows if (r["section"], r["case"], r["system"]) == (section, case, system)]
        return float(row[key])

    def batching(case: str, key: str) -> float:
        """on / off for one throughput case."""
        return get("throughput", case, "aclq, batching on", key) / get("throughput", case, "aclq, batching off", key)

    def captured(case: str) -> float:
        """(gain - 1) / (engine gain - 1): the share of the engine's batch-32 gain aclq keeps."""
        return (batching(case, "jobs_s") - 1) / (engine - 1)

    lat, m = "latency", BATCH_MODEL
    engine = get("engine", f"{m}, batch 32", "onnxruntime in-process", "jobs_s") / get(
        "engine", f"{m}, batch 1", "onnxruntime in-process", "jobs_s"
    )
    offered_case = next(r["case"] for r in rows if r["case"].startswith(f"{m}, offered"))
    return [
        {"ratio": "tiny p50, aclq / celery no-op", "target": "<= 0.9",
         "value": get(lat, "tiny (add)", "aclq", "p50_ms") / get(lat, "tiny (add)", "celery no-op", "p50_ms")},
        {"ratio": "tiny jobs/s, aclq submit per job / celery no-op", "target": ">= 1.0",
         "value": get("throughput", "tiny", "aclq, submit per job", "jobs_s")
         / get("throughput", "tiny", "celery no-op", "jobs_s")},
        {"ratio": "tiny jobs/s, aclq map / celery no-op", "target": ">= 3",
         "value": get("throughput", "tiny", "aclq, map window 64", "jobs_s")
         / get("throughput", "tiny", "celery no-op", "jobs_s")},
        {"ratio": "1 MiB p50, aclq / redis echo", "target": "<= 2",
         "value": get(lat, "1 MiB (identity)", "aclq", "p50_ms")
         / get(lat, "1 MiB (identity)", "redis echo", "p50_ms")},
        {"ratio": "16 MiB p50, aclq / redis echo", "target": "<= 1.2",
         "value": get(lat, "16 MiB (identity)", "aclq", "p50_ms")
         / get(lat, "16 MiB (identity)", "redis echo", "p50_ms")},
        {"ratio": f"{m} engine rows/s, batch 32 / batch 1", "target": "", "value": engine},
        {"ratio": f"{m} jobs/s, {IN_FLIGHT} in flight, batching on / off", "target": "",
         "value": batching(f"{m}, {IN_FLIGHT} in flight", "jobs_s")},
        {"ratio": f"{m} share of engine gain, {IN_FLIGHT} in flight", "target": ">= 0.5",
         "value": captured(f"{m}, {IN_FLIGHT} in flight")},
        {"ratio": f"{m} jobs/s, queued backlog, batching on / off", "target": "",
         "value": batching(f"{m}, queued backlog", "jobs_s")},
        {"ratio": f"{m} share of engine gain, queued backlog", "target": ">= 0.8",
         "value": captured(f"{m}, queued backlog")},
        {"ratio": f"{m} jobs/s, sent at once, batching on / off", "target": "",
         "value": batching(f"{m}, sent at once", "jobs_s")},
        {"ratio": f"{m} p99 at fixed load, batching on / off", "target": "<= 2",
         "value": batching(offered_case, "p99_ms")},
        {"ratio": f"{m} jobs/s, sent at once, {CHUNK}/msg, batching on / off", "target": "",
         "value": batching(f"{m}, sent at once, {CHUNK}/msg", "jobs_s")},
        {"ratio": "mlp (small) jobs/s, queued backlog, batching on / off", "target": ">= 1",
         "value": batching("mlp, queued backlog", "jobs_s")},
        {"ratio": "mlp (small) jobs/s, sent at once, batching on / off", "target": ">= 1",
         "value": batching("mlp, sent at once", "jobs_s")},
        {"ratio": "mlp p50, aclq / celery + msgpack", "target": "",
         "value": get(lat, "mlp, 1 row", "aclq", "p50_ms") / get(lat, "mlp, 1 row", "celery + msgpack", "p50_ms")},
    ]  # fmt: skip


def render(rows: list[Row], ratio_rows: list[Row]) -> str:
    def cell(row: Row, key: str, fmt: str) -> str:
        return format(row[key], fmt) if row.get(key) is not None else ""

    lines = [f"{'section':<10} {'case':<28} {'system':<24} {'p50 ms':>8} {'p99 ms':>8} {'jobs/s':>8} {'batch':>6}"]
    for r in rows:
        lines.append(
            f"{r['section']:<10} {r['case']:<28} {r['system']:<24} {cell(r, 'p50_ms', '8.2f'):>8} "
            f"{cell(r, 'p99_ms', '8.2f'):>8} {cell(r, 'jobs_s', '8.0f'):>8} {cell(r, 'mean_batch', '6.1f'):>6}"
        )
    lines.append("")
    for r in ratio_rows:
        target = f"(target {r['target']})" if r["target"] else ""
        lines.append(f"{r['ratio']:<50} {r['value']:7.2f}  {target}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="round trips per latency case")
    parser.add_argument("--jobs", type=int, default=3000, help="mlp jobs per throughput run")
    parser.add_argument("--json", type=Path, help="also write the rows and ratios here")
    args = parser.parse_args()
    os.environ.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT="2")  # one engine thread per worker
    keep_message_buffers()  # this process runs aclq's client and the baselines' clients alike
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        repos = {"off": Path(tmp) / "off", "on": Path(tmp) / "on"}
        for repo in repos.values():
            build(repo, [*MODELS, BATCH_MODEL])
        for config in repos["off"].glob("*/config.json"):
            config.unlink()
        env = {**os.environ, "BENCH_REDIS_URL": server.url, "BENCH_MODEL_REPO": str(repos["off"])}
        baselines.configure(server.url)
        plain = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "bench.baselines", "-q", "worker", "-P", "solo", "-l", "WARNING",
             "--without-gossip", "--without-mingle"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        echo = subprocess.Popen([sys.executable, "-m", "bench.baselines", "echo", server.url])
        settings = Settings(redis_url=server.url, model_repo=str(repos["off"]))
        try:
            with LocalCluster(settings, devices=[0]), Client(settings) as client:  # one worker, as Celery's
                rows = latency(client, redis.Redis.from_url(server.url, **REDIS_OPTIONS), repos["off"], args.rounds)
                rows += tiny_throughput(client, 1000)
        finally:
            # Celery's AsyncResults unsubscribe when collected: let them while Redis is still up
            # (collected at exit, each retries a dead connection for seconds).
            gc.collect()
            plain.terminate()
            echo.terminate()
            plain.wait()
            echo.wait()
        rows += engine_gain(repos["off"])
        rows += batching_throughput(settings, repos, BATCH_MODEL, args.jobs, full=True)
        rows += batching_throughput(settings, repos, "mlp", args.jobs, full=False)
    ratio_rows = ratios(rows)
    print(render(rows, ratio_rows), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratios": ratio_rows}, indent=2))


if __name__ == "__main__":
    main()
