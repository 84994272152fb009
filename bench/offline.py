"""Offline batch at device speed: `aclq batch` as a user runs it, against ONNX Runtime in-process.

    python -m bench.offline [--files 200] [--images 200000] [--rows 512]

A. ResNet-50 (examples.build_models.resnet50: its architecture, seeded weights), ``--files``
   .npy files of one 1x3x224x224 image in a directory. aclq: the `aclq batch` command in a
   process of its own on the embedded default (no ACLQ_REDIS_URL: it starts Redis and one worker
   per device, ACLQ_DEVICE_COUNT=2 on this 2-core machine), `--transfer ref` and `--transfer
   bytes`, wall time from the command's start to its exit; then the same on two workers already
   running (as `aclq up` leaves them: no start-up in the command). In-process: one ONNX Runtime session
   with the same two threads, timed from its creation, reading each file and writing each output
   as the command does.
B. The example conv over ``--images`` 3x32x32 images in one .npy, split into jobs of ``--rows``
   rows, both transfers, against one in-process session over the same chunks (memory-mapped).

aclq's first run of a model optimizes its graph and keeps it (ACLQ_GRAPH_CACHE_DIR, a directory
of this run); that first run is printed as the cold row, every other one finds the graph kept.
aclq's modules are byte-compiled first, as pip compiles an installed package: where
PYTHONDONTWRITEBYTECODE is set (this machine sets it) an editable checkout would otherwise
compile them again in every process it starts, ~0.12 s each, which no user of a wheel pays.

Printed per case: wall time with start-up, items/s once running (the summary's rate, which
starts at the first job; in-process: after the session exists), their ratios (targets of issue
15: >= 0.95 with start-up and >= 0.98 running for A, >= 0.9 for B), and the largest difference
between aclq's outputs and in-process ones.
"""

import argparse
import compileall
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from examples.build_models import build
from producer import Settings
from worker.local import LocalCluster

THREADS = 2


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def in_process_files(model: Path, files: list[Path], out: Path) -> tuple[float, float]:
    """Wall time from session creation to the last output written; items/s after creation."""
    started = time.perf_counter()
    s = session(model)
    running = time.perf_counter()
    out.mkdir()
    for f in files:
        (y,) = s.run(None, {"x": np.load(f)})
        np.save(out / f.name, y)
    done = time.perf_counter()
    return done - started, len(files) / (done - running)


def in_process_split(model: Path, data: Path, rows: int, out: Path) -> tuple[float, float]:
    started = time.perf_counter()
    s = session(model)
    running = time.perf_counter()
    x = np.load(data, mmap_mode="r")
    ys = [s.run(None, {"x": np.ascontiguousarray(x[i : i + rows])})[0] for i in range(0, len(x), rows)]
    np.save(out, np.concatenate(ys))
    done = time.perf_counter()
    return done - started, len(x) / (done - running)


def aclq_batch(
    repo: Path, model: str, source: Path, out: Path, *extra: str, redis_url: str | None = None
) -> tuple[float, dict[str, object]]:
    """The command's wall time and summary: on the embedded default, or (``redis_url``) on workers
    already running, as after `aclq up`."""
    env = {k: v for k, v in os.environ.items() if k != "ACLQ_REDIS_URL"}
    env.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT=str(THREADS), ACLQ_MODEL_REPO=str(repo))
    if redis_url is not None:
        env["ACLQ_REDIS_URL"] = redis_url
    command = [sys.executable, "-m", "producer.cli", "batch", "--model", model, "--input", str(source),
               "--output", str(out), "--quiet", *extra]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"aclq batch failed ({done.returncode}): {done.stderr[-2000:]}")
    for line in done.stderr.splitlines():
        if line.startswith("aclq batch:"):  # its choices: transfer, batch size
            print(f"    {line}")
    return wall, json.loads(done.stdout)


def row(case: str, wall: float, rate: float, base_wall: float, base_rate: float, diff: float) -> None:
    print(
        f"{case:<46}{wall:>9.2f}{rate:>10.1f}{base_wall / wall:>12.3f}{rate / base_rate:>12.3f}{diff:>12.2e}",
        flush=True,
    )


def max_relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-30))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--rows", default="auto", help="rows a job for B: a number, or auto (aclq's choice)")
    args = parser.parse_args()
    for package in ("acl_core", "producer", "worker"):
        compileall.compile_dir(Path(__file__).parent.parent / package, quiet=1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ACLQ_GRAPH_CACHE_DIR"] = str(tmp / "graphs")  # the commands and workers inherit it
        repo = tmp / "repo"
        build(repo, ["resnet50", "conv"])
        rng = np.random.default_rng(0)
        images = tmp / "images"
        images.mkdir()
        files = []
        for i in range(args.files):
            files.append(images / f"{i:05d}.npy")
            np.save(files[-1], rng.standard_normal((1, 3, 224, 224)).astype(np.float32))
        print(f"{'case':<46}{'wall s':>9}{'items/s':>10}{'wall ratio':>12}{'rate ratio':>12}{'max rel diff':>12}")
        base_wall, base_rate = in_process_files(repo / "resnet50" / "1" / "model.onnx", files, tmp / "ref_a")
        print(f"{'A in-process (2 threads)':<46}{base_wall:>9.2f}{base_rate:>10.1f}")
        for run, (case, transfer) in enumerate((("cold graph cache", "ref"), ("", "ref"), ("", "bytes"))):
            out = tmp / f"a_{run}"
            wall, summary = aclq_batch(repo, "resnet50", images, out, "--transfer", transfer)
            diff = max(
                max_relative(np.load(out / f"{f.stem}.npz")["logits"], np.load(tmp / "ref_a" / f.name)) for f in files
            )
            label = f"A aclq batch --transfer {transfer}{', ' + case if case else ''}"
            row(label, wall, float(summary["items_per_s"]), base_wall, base_rate, diff)  # type: ignore[arg-type]
        os.environ.update(ACLQ_PROVIDER="cpu", ACLQ_DEVICE_COUNT=str(THREADS))
        with LocalCluster(Settings(model_repo=str(repo)), devices=list(range(THREADS))) as running:
            out = tmp / "a_running"
            wall, summary = aclq_batch(repo, "resnet50", images, out, redis_url=running.settings.redis_url)
            diff = max(
                max_relative(np.load(out / f"{f.stem}.npz")["logits"], np.load(tmp / "ref_a" / f.name)) for f in files
            )
            row("A ... on running workers (aclq up)", wall, float(summary["items_per_s"]), base_wall, base_rate, diff)  # type: ignore[arg-type]

        data = tmp / "x.npy"
        x = np.lib.format.open_memmap(data, mode="w+", dtype=np.float32, shape=(args.images, 3, 32, 32))
        for i in range(0, args.images, 10_000):
            x[i : i + 10_000] = rng.standard_normal((min(10_000, args.images - i), 3, 32, 32))
        x.flush()
        del x
        chunk = 512 if args.rows == "auto" else int(args.rows)  # in-process: ONNX Runtime's rate is flat past ~256
        base_wall, base_rate = in_process_split(repo / "conv" / "1" / "model.onnx", data, chunk, tmp / "ref_b.npy")
        print(f"{'B in-process (2 threads)':<46}{base_wall:>9.2f}{base_rate:>10.1f}")
        reference = np.load(tmp / "ref_b.npy")
        for transfer in ("ref", "bytes"):
            out = tmp / f"b_{transfer}"
            wall, summary = aclq_batch(
                repo, "conv", data, out, "--batch-size", str(args.rows), "--transfer", transfer, "--window", "8"
            )
            items = args.images / (float(summary["elapsed_s"]) or 1e-9)  # type: ignore[arg-type]
            diff = max_relative(np.load(out / "logits.npy"), reference)
            row(f"B aclq batch --transfer {transfer}", wall, items, base_wall, base_rate, diff)


if __name__ == "__main__":
    main()
