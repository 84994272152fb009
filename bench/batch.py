"""Offline batch throughput: 2,000 conv items through 2 CPU-device workers vs ONNX Runtime in-process.

    python -m bench.batch [--items N] [--json FILE]

Both sides use the machine's cores once: two workers on two virtual CPU devices (one intra-op
thread each on this 2-core machine) against one in-process session with as many threads as
cores. Each side runs the same items in the same job sizes (rows per job); the figure is
aclq's items/s as a share of in-process items/s. Target (issue 4): at least 90 %.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from examples.build_models import build
from producer import Client, Settings
from producer.batch import run_batch
from producer.malloc import keep_message_buffers
from worker.local import LocalCluster

TARGET = 0.90


def in_process(path: Path, x: np.ndarray, rows: int) -> float:
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": x[:rows]})  # warm up
    started = time.perf_counter()
    for start in range(0, len(x), rows):
        session.run(None, {"x": x[start : start + rows]})
    return len(x) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 8, 32], help="rows per job")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    os.environ.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT="2")
    keep_message_buffers()
    x = np.random.default_rng(0).standard_normal((args.items, 3, 32, 32)).astype(np.float32)
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        repo, data = Path(tmp) / "repo", Path(tmp) / "x.npy"
        build(repo, ["conv"])
        np.save(data, x)
        with (
            LocalCluster(Settings(model_repo=str(repo)), devices=[0, 1]) as cluster,
            Client(cluster.settings) as client,
        ):
            run_batch(client, "conv", data, Path(tmp) / "warm", batch_size=32)  # models loaded on both workers
            for rows in args.rows:
                baseline = in_process(repo / "conv" / "1" / "model.onnx", x, rows)
                summary = run_batch(client, "conv", data, Path(tmp) / f"out{rows}", batch_size=rows, window=8)
                assert summary.failed == 0, summary.failures
                ours = args.items / summary.elapsed_s
                rows_out.append(
                    {"rows_per_job": rows, "aclq_items_s": round(ours), "in_process_items_s": round(baseline),
                     "share": round(ours / baseline, 3), "devices": summary.devices}
                )  # fmt: skip
    print(f"{'rows/job':>8} {'aclq items/s':>13} {'in-process':>11} {'share':>7}  target >= {TARGET:.0%}")
    for r in rows_out:
        verdict = "ok" if r["share"] >= TARGET else "under"
        cells = f"{r['rows_per_job']:>8} {r['aclq_items_s']:>13} {r['in_process_items_s']:>11} {r['share']:>7.1%}"
        print(f"{cells}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps(rows_out, indent=2))


if __name__ == "__main__":
    main()
