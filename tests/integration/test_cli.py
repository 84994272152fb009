"""The `aclq` command: `aclq up` with no broker configured, then `aclq submit` against it."""

import os
import signal
import subprocess
import sys

import numpy as np


def test_up_embedded_then_submit(model_repo, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ACLQ_REDIS_URL"}
    env.update(ACLQ_MODEL_REPO=str(model_repo), ACLQ_NAMESPACE="cli-test")
    up = subprocess.Popen(
        [sys.executable, "-m", "producer.cli", "up", "--devices", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        url_line = up.stdout.readline()
        assert url_line.startswith("ACLQ_REDIS_URL=redis://127.0.0.1:"), url_line
        assert "2 workers on devices [0, 1]" in up.stdout.readline()
        a = tmp_path / "a.npy"
        np.save(a, np.arange(6, dtype=np.float32).reshape(2, 3))
        out = tmp_path / "out.npz"
        env["ACLQ_REDIS_URL"] = url_line.strip().split("=", 1)[1]
        done = subprocess.run(
            [sys.executable, "-m", "producer.cli", "submit", "--model", "add:1", "--input", f"a={a}",
             "--input", f"b={a}", "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "c float32[2, 3]" in done.stdout
        with np.load(out) as result:
            np.testing.assert_array_equal(result["c"], 2 * np.arange(6, dtype=np.float32).reshape(2, 3))
        bad = subprocess.run(
            [sys.executable, "-m", "producer.cli", "submit", "--model", "add", "--input", f"a={a}",
             "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode == 1 and "[100017 ACL_ERROR_MODEL_INPUT_NOT_MATCH] missing inputs ['b']" in bad.stderr
    finally:
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0
    assert "aclq up: stopped" in up.stdout.read()
    up.stdout.close()
