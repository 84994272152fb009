"""Per-call overhead of acl_core over a direct ``InferenceSession.run`` on the same model and input.

    python -m bench.acl_overhead [--calls N]

Measures, in one run and interleaved so that machine noise hits all alike: ONNX Runtime alone
(the baseline), ``acl.mdl.execute_v2`` with runtime-allocated outputs (free + reset included,
as a pyACL loop does), and the Pythonic ``Model.execute``. Prints µs per call and µs added.
Target (issue 2): at most 30 µs added per call.
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from acl_core import Device, ExecConfig, acl
from acl_core.constants import ExecConfigAttr
from examples.build_models import build

TARGET_US = 30.0


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls * 1e6


def _flat_runner(path: str, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    """pyACL-style: inputs in device memory once; each call runs, frees the output, resets."""
    model_id, _ = acl.mdl.load_from_file(path)
    stream, _ = acl.rt.create_stream()
    handle = acl.mdl.create_exec_config_handle()
    acl.mdl.set_exec_config_opt(handle, ExecConfigAttr.ACL_MDL_STREAM_SYNC_TIMEOUT, 10_000)
    inputs, outputs = acl.mdl.create_dataset(), acl.mdl.create_dataset()
    for array in feeds.values():
        ptr, _ = acl.rt.malloc(array.nbytes, 0)
        acl.rt.memcpy(ptr, array.nbytes, acl.util.numpy_to_ptr(array), array.nbytes, 1)
        acl.mdl.add_dataset_buffer(inputs, acl.create_data_buffer(ptr, array.nbytes))
    out = acl.create_data_buffer(0, 0)
    acl.mdl.add_dataset_buffer(outputs, out)

    def run() -> None:
        assert acl.mdl.execute_v2(model_id, inputs, outputs, stream, handle) == 0
        acl.rt.free(acl.get_data_buffer_addr(out))
        acl.update_data_buffer(out, 0, 0)

    return run


def measure(repo: Path, calls: int, rounds: int) -> list[dict[str, float | str]]:
    rows: list[dict[str, float | str]] = []
    device = Device(0)
    acl.rt.set_device(0)
    rng = np.random.default_rng(0)
    cases = {
        "add": {
            "a": rng.standard_normal((2, 3)).astype(np.float32),
            "b": rng.standard_normal((2, 3)).astype(np.float32),
        },
        "mlp": {"x": rng.standard_normal((1, 64)).astype(np.float32)},
    }
    for name, feeds in cases.items():
        path = str(repo / name / "1" / "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        model = device.load(path)
        config = ExecConfig(stream_sync_timeout_ms=10_000)
        runners = {
            "onnxruntime": lambda s=session, f=feeds: s.run(None, f),
            "execute_v2": _flat_runner(path, feeds),
            "Model.execute": lambda m=model, f=feeds, c=config: m.execute(f, c),
        }
        for fn in runners.values():  # warm up
            _per_call_us(fn, calls // 10)
        samples: dict[str, list[float]] = {k: [] for k in runners}
        for _ in range(rounds):
            for label, fn in runners.items():
                samples[label].append(_per_call_us(fn, calls))
        base = statistics.median(samples["onnxruntime"])
        for label, values in samples.items():
            us = statistics.median(values)
            rows.append({"model": name, "path": label, "us_per_call": us, "added_us": us - base, "ratio": us / base})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp), ["add", "mlp"])
        rows = measure(Path(tmp), args.calls, args.rounds)
    print(f"{'model':<6} {'path':<14} {'µs/call':>9} {'added µs':>9} {'× ORT':>6}  target ≤ {TARGET_US:g} µs added")
    for r in rows:
        verdict = "" if r["path"] == "onnxruntime" else ("ok" if float(r["added_us"]) <= TARGET_US else "OVER")
        cells = f"{r['us_per_call']:>9.1f} {r['added_us']:>9.1f} {r['ratio']:>6.2f}"
        print(f"{r['model']:<6} {r['path']:<14} {cells}  {verdict}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
