"""One job's latency, this checkout against another commit's, taking turns on one machine.

    python -m bench.pair --base REV [--sizes BYTES ...] [--blocks N] [--per N]

On a shared, noisy machine two runs of a benchmark minutes apart differ by more than most
changes do. Here both versions run at once: one embedded Redis; for each version a side process
(this file, run with that checkout's packages first on its path) with its own worker (device
0) and client in its own namespace; a raw Redis echo beside them. They take turns in blocks of
``--per`` sequential ``infer``s of the identity model, the order alternated, so a slow moment
of the machine falls on both. Printed per payload size: each side's p50, the new over the old,
and each over the raw echo. The base checkout is a temporary ``git worktree``, removed after.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
MODEL = "identity_uint8"


def side(url: str, repo: str, namespace: str, size: int) -> None:
    """A side: its worker and client (imported from whichever checkout is first on the path),
    ``infer``s of ``size`` bytes each way, a block of latencies per line read from stdin."""
    import numpy as np

    from producer import Client, Settings
    from producer.malloc import keep_message_buffers
    from worker.local import LocalCluster

    keep_message_buffers()
    x = np.random.default_rng(0).integers(0, 255, (1, size), dtype=np.uint8)
    settings = Settings(redis_url=url, model_repo=repo, namespace=namespace)
    with LocalCluster(settings, devices=[0]), Client(settings) as client:
        for _ in range(20):  # warm: model loaded, connections open
            client.infer(MODEL, {"x": x}, result_timeout_s=60)
        print("ready", flush=True)
        for line in sys.stdin:
            latencies = []
            for _ in range(int(line)):
                started = time.perf_counter()
                client.infer(MODEL, {"x": x}, result_timeout_s=60)
                latencies.append(time.perf_counter() - started)
            print(json.dumps(latencies), flush=True)


def start_side(root: Path, url: str, repo: Path, namespace: str, size: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(root), "ACLQ_PROVIDER": "cpu", "ACLQ_DEVICE_COUNT": "1"}
    command = [sys.executable, str(HERE), "side", url, str(repo), namespace, str(size)]
    process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline().strip() == "ready", f"{namespace} did not start"
    return process


def compare(base: Path, size: int, blocks: int, per: int) -> dict[str, float]:
    """p50 ms of the old side, the new side and the raw echo, interleaved."""
    import numpy as np
    import redis

    from bench import baselines
    from examples.build_models import build
    from producer.connection import REDIS_OPTIONS
    from worker.embedded import RedisServer

    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        repo = Path(tmp) / "models"
        build(repo, [MODEL])
        sides = {name: start_side(root, server.url, repo, name, size) for name, root in (("old", base), ("new", ROOT))}
        echo = subprocess.Popen([sys.executable, "-m", "bench.baselines", "echo", server.url], cwd=ROOT)
        r = redis.Redis.from_url(server.url, **REDIS_OPTIONS)
        raw = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8).tobytes()

        def echoed() -> float:
            started = time.perf_counter()
            r.lpush(baselines.ECHO_IN, raw)
            r.brpop([baselines.ECHO_OUT])
            return time.perf_counter() - started

        for _ in range(10):
            echoed()
        latencies: dict[str, list[float]] = {"old": [], "new": [], "echo": []}
        try:
            for block in range(blocks):
                for name in ("old", "new", "echo") if block % 2 == 0 else ("new", "old", "echo"):
                    if name == "echo":
                        latencies[name] += [echoed() for _ in range(per)]
                        continue
                    process = sides[name]
                    assert process.stdin is not None and process.stdout is not None
                    process.stdin.write(f"{per}\n")
                    process.stdin.flush()
                    latencies[name] += json.loads(process.stdout.readline())
        finally:
            for process in sides.values():
                assert process.stdin is not None
                process.stdin.close()
                process.wait(60)
            echo.terminate()
            echo.wait()
        return {name: statistics.median(values) * 1000 for name, values in latencies.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the commit to compare this checkout with")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1 << 20, 16 << 20], help="bytes in and out")
    parser.add_argument("--blocks", type=int, default=20, help="turns each side takes")
    parser.add_argument("--per", type=int, default=15, help="infers a turn (a tenth of it at 16 MiB and more)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(base), args.base], cwd=ROOT, check=True)
        try:
            print(f"{'bytes':>10} {'old p50 ms':>11} {'new p50 ms':>11} {'echo p50 ms':>12} {'new/old':>8} "
                  f"{'old/echo':>9} {'new/echo':>9}")  # fmt: skip
            for size in args.sizes:
                per = max(args.per // 10, 2) if size >= 16 << 20 else args.per
                p50 = compare(base, size, args.blocks, per)
                print(f"{size:>10} {p50['old']:>11.3f} {p50['new']:>11.3f} {p50['echo']:>12.3f} "
                      f"{p50['new'] / p50['old']:>8.3f} {p50['old'] / p50['echo']:>9.3f} "
                      f"{p50['new'] / p50['echo']:>9.3f}", flush=True)  # fmt: skip
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=True)


if __name__ == "__main__" and sys.argv[1:2] == ["side"]:
    side(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
elif __name__ == "__main__":
    main()
