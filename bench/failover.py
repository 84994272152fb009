"""A Sentinel failover under load, repeated: how long it takes, and what the callers see.

    python -m bench.failover [--runs 5] [--jobs 600] [--threads 8]

Each run starts a primary, a replica and three sentinels (tests/sentinel.py: quorum 2, the
primary called down after 1 s), two workers (CPU, devices 0 and 1) and a Client on the Sentinel
URL. ``--threads`` callers each submit a job and wait for it, one after the other, until
``--jobs`` are done; once a quarter are answered the primary is killed with SIGKILL. Per run:
the failover (kill to the sentinels' ``+switch-master``), the longest stretch without an answer
(what the callers waited), and each job's outcome: answered (outputs checked against ONNX
Runtime in this process), named lost (``JobNotFound``: its records were in the writes the
replica never got), or a broker error (``BrokerConnectionError``: Redis unreachable for longer
than the clients ride out, producer/connection.py). A job with no outcome fails the run.
"""

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort

from examples.build_models import build
from producer import BrokerConnectionError, Client, JobNotFound, Settings
from tests.sentinel import SentinelGroup
from worker.local import LocalCluster

#: a job's wait, seconds: far past a failover; reaching it counts as "no outcome"
WAIT_S = 120


def one_run(repo: Path, jobs: int, threads: int) -> dict[str, float]:
    session = ort.InferenceSession(str(repo / "mlp" / "1" / "model.onnx"))
    outcomes: Counter[str] = Counter()
    answered_at: list[float] = []
    lock = threading.Lock()
    quarter = threading.Event()
    next_job = iter(range(jobs))

    def caller(client: Client) -> None:
        for i in next_job:  # shared: each job is taken by one caller
            x = np.random.default_rng(i).standard_normal((1, 64)).astype(np.float32)
            try:
                y = client.submit("mlp", {"x": x}).result(WAIT_S)["y"]
                (expected,) = session.run(None, {"x": x})
                outcome = "answered" if np.allclose(y, expected, rtol=1e-5, atol=1e-6) else "wrong"
            except JobNotFound:
                outcome = "named lost"
            except BrokerConnectionError as exc:
                outcome = "broker error"
                print(f"broker error: {exc}", file=sys.stderr)
            with lock:
                outcomes[outcome] += 1
                answered_at.append(time.monotonic())
                if len(answered_at) >= jobs // 4:
                    quarter.set()

    with SentinelGroup() as group:
        settings = Settings(redis_url=group.url(), model_repo=str(repo), namespace="failover", visibility_timeout_s=2)
        with LocalCluster(settings, devices=[0, 1]), Client(settings) as client:
            pool = [threading.Thread(target=caller, args=(client,)) for _ in range(threads)]
            for thread in pool:
                thread.start()
            quarter.wait(WAIT_S)
            with group.switch_watch() as failover:
                killed_at = time.monotonic()
                group.primary.kill()
            for thread in pool:
                thread.join(WAIT_S * 2)
    # the longest stretch without an answer, from the kill on
    stretch = [killed_at, *sorted(t for t in answered_at if t >= killed_at)]
    gap = max(b - a for a, b in zip(stretch, stretch[1:])) if len(stretch) > 1 else float("nan")
    missing = jobs - sum(outcomes.values())
    return {
        "failover_s": failover["seconds"],
        "callers_waited_s": gap,
        **{k: float(v) for k, v in outcomes.items()},
        "no outcome": float(missing),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    os.environ.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT="2")
    columns = ["failover_s", "callers_waited_s", "answered", "named lost", "broker error", "wrong", "no outcome"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        build(repo, ["mlp"])
        print(f"{'run':<5}" + "".join(f"{c:>18}" for c in columns))
        for run in range(args.runs):
            row = one_run(repo, args.jobs, args.threads)
            rows.append(row)
            print(f"{run + 1:<5}" + "".join(f"{row.get(c, 0):>18.2f}" for c in columns), flush=True)
    print(f"{'mean':<5}" + "".join(f"{statistics.fmean(r.get(c, 0) for r in rows):>18.2f}" for c in columns))


if __name__ == "__main__":
    main()
