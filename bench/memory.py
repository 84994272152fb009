"""Memory bounded by the window and the job size, not the file: the peak resident memory of
`aclq batch` and of each worker over a multi-GB .npy.

    python -m bench.memory [--gb 4] [--rows 1365] [--window 8]

One .npy of ``--gb`` GB (rows of 3x32x32 float32) split into jobs of ``--rows`` rows through the
example conv, on two workers already running (their resident memory before the run, and their
peak after it: /proc/PID/status VmRSS and VmHWM), the command in a process of its own (its peak:
the largest resident set /usr/bin/time reports), by reference and by bytes. Printed beside the
file's size and the bound the design gives: window x job bytes, in flight at once.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from examples.build_models import build
from producer import Settings
from worker.local import LocalCluster

ROW_BYTES = 3 * 32 * 32 * 4


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=4.0)
    parser.add_argument("--rows", type=int, default=1365)
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()
    os.environ.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT="2")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        repo, data = tmp / "repo", tmp / "x.npy"
        build(repo, ["conv"])
        n = int(args.gb * 1e9 // ROW_BYTES)
        x = np.lib.format.open_memmap(data, mode="w+", dtype=np.float32, shape=(n, 3, 32, 32))
        rng = np.random.default_rng(0)
        for i in range(0, n, 20_000):
            x[i : i + 20_000] = rng.standard_normal((min(20_000, n - i), 3, 32, 32))
        x.flush()
        del x
        job_mib = args.rows * ROW_BYTES / 2**20
        print(f"file {data.stat().st_size / 2**30:.2f} GiB, {n} rows; jobs of {args.rows} rows ({job_mib:.1f} MiB), "
              f"window {args.window}: at most {args.window * job_mib:.0f} MiB of inputs in flight")  # fmt: skip
        print(f"{'transfer':<10}{'command peak MiB':>18}{'worker RSS before':>19}{'worker peak':>13}{'seconds':>9}")
        for transfer in ("ref", "bytes"):
            with LocalCluster(Settings(model_repo=str(repo)), devices=[0, 1]) as cluster:
                pids = [p.pid for p in cluster.workers.values()]
                before = [status_kib(pid, "VmRSS") for pid in pids]
                env = {**os.environ, "ACLQ_REDIS_URL": cluster.settings.redis_url or "", "ACLQ_MODEL_REPO": str(repo)}
                command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "producer.cli", "batch",
                           "--model", "conv", "--input", str(data), "--output", str(tmp / f"out_{transfer}"),
                           "--quiet", "--transfer", transfer, "--batch-size", str(args.rows),
                           "--window", str(args.window)]  # fmt: skip
                started = time.perf_counter()
                done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
                seconds = time.perf_counter() - started
                if done.returncode != 0:
                    raise RuntimeError(done.stderr[-2000:])
                command_peak_kib = int(done.stderr.strip().splitlines()[-1])
                peaks = [status_kib(pid, "VmHWM") for pid in pids]
            print(
                f"{transfer:<10}{command_peak_kib / 1024:>18.0f}{max(before) / 1024:>19.0f}"
                f"{max(peaks) / 1024:>13.0f}{seconds:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
