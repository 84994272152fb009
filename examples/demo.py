"""The main job end to end on the bundled example: `make demo`.

With no ACLQ_REDIS_URL it starts a private Redis and one worker per device (two virtual CPU
devices unless ACLQ_DEVICE_COUNT says otherwise), submits jobs through the client, checks
every output against ONNX Runtime run directly, and shows how failures come back.
"""

import os
import sys
import time

import numpy as np
import onnxruntime as ort

from producer import Client, JobFailed, Settings
from worker.local import LocalCluster


def reference(repo: str, model: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(f"{repo}/{model}/1/model.onnx", providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def main() -> int:
    os.environ.setdefault("ACLQ_DEVICE_COUNT", "2")
    settings = Settings.from_env(model_repo=os.environ.get("ACLQ_MODEL_REPO", "examples/model_repo"))
    rng = np.random.default_rng(0)
    cases = {
        "add": {
            "a": rng.standard_normal((2, 3)).astype(np.float32),
            "b": rng.standard_normal((2, 3)).astype(np.float32),
        },
        "mlp": {"x": rng.standard_normal((8, 64)).astype(np.float32)},
        "conv": {"x": rng.standard_normal((4, 3, 32, 32)).astype(np.float32)},
        "nonzero": {"x": (rng.standard_normal((4, 4)) > 0.5).astype(np.float32)},
    }
    started = time.perf_counter()
    with LocalCluster(settings) as cluster, Client(cluster.settings) as client:
        up_s = time.perf_counter() - started
        print(f"broker {cluster.settings.safe_url()}, {len(cluster.workers)} workers, up in {up_s:.1f} s")
        ok = True
        for model, feeds in cases.items():
            outputs = client.infer(model, feeds, result_timeout_s=60)
            diff = max(
                float(np.max(np.abs(o - r), initial=0))
                for o, r in zip(outputs.values(), reference(settings.model_repo, model, feeds))
            )
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in outputs.items())
            print(f"  {model:<8} -> {shapes:<22} max |diff| vs ONNX Runtime: {diff:.2e}")
            ok &= diff < 1e-5

        images = [{"x": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(200)]
        started = time.perf_counter()
        results = list(client.map("conv", images, window=16))
        elapsed = time.perf_counter() - started
        print(f"  map: {len(results)} conv jobs in order, window 16: {len(results) / elapsed:.0f} jobs/s")

        failures = [
            ("wrong dtype", "add", {"a": np.ones((2, 3), np.int64), "b": np.ones((2, 3), np.float32)}, {}),
            ("unknown model", "resnet", {"x": np.ones(1, np.float32)}, {}),
            ("per-job timeout", "slow", {"x": np.ones((64, 64), np.float32), "iterations": np.array(10**7)},
             {"stream_sync_timeout_ms": 100}),
        ]  # fmt: skip
        for what, model, feeds, options in failures:
            try:
                client.infer(model, feeds, options=options, result_timeout_s=60)
                ok = False
                print(f"  {what}: unexpectedly succeeded")
            except JobFailed as exc:
                print(f"  {what:<15} -> [{exc.code} {exc.name}] {exc.message[:70]}")
        print("demo", "passed" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
