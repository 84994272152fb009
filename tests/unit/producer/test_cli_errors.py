"""The `aclq` command's errors: one line naming the problem, no traceback, no password."""

import os
import subprocess
import sys


def aclq(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith("ACLQ_")}
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args], env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_no_broker_configured():
    for command in (["worker", "--device", "0"], ["status"]):
        done = aclq(*command)
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert "no broker configured: set ACLQ_REDIS_URL" in done.stderr


def test_missing_input_file(tmp_path):
    missing = f"a={tmp_path / 'nope.npy'}"
    done = aclq("submit", "--model", "add", "--input", missing, "--output", "o.npz", ACLQ_REDIS_URL="redis://h:1/0")
    assert done.returncode == 2 and "No such file or directory" in done.stderr and "Traceback" not in done.stderr


def test_unreachable_redis_masks_the_password(tmp_path):
    import numpy as np

    np.save(tmp_path / "a.npy", np.ones((2, 3), np.float32))
    a, out = f"a={tmp_path / 'a.npy'}", str(tmp_path / "o.npz")
    done = aclq(
        "submit", "--model", "add", "--input", a, "--output", out, ACLQ_REDIS_URL="redis://:hunter2@127.0.0.1:1/0"
    )
    assert done.returncode == 1 and "redis://:***@127.0.0.1:1/0" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_bad_option_and_model_ref(tmp_path):
    done = aclq("submit", "--model", "add:x", "--input", "a=b.npy", "--output", "o.npz", ACLQ_REDIS_URL="redis://h/0")
    assert done.returncode == 2 and "the version after ':' must be a number" in done.stderr
    done = aclq("submit", "--model", ":1", "--input", "a=b.npy", "--output", "o.npz", ACLQ_REDIS_URL="redis://h/0")
    assert done.returncode == 2 and "':1': a model name is needed before ':'" in done.stderr
    done = aclq("submit", "--model", "add", "--input", "a=b.npy", "--output", "o.npz", "--option", "x=1.5",
                ACLQ_REDIS_URL="redis://h/0")  # fmt: skip
    assert done.returncode == 2 and "must be NAME=INTEGER" in done.stderr


def test_bad_batch_size_shape_and_dtype_are_named_before_anything_runs(tmp_path):
    url = "redis://127.0.0.1:1/0"  # nothing listens: each must fail on its argument first
    for size in ("0", "some"):
        done = aclq("batch", "--model", "m", "--input", str(tmp_path), "--output", str(tmp_path / "o"),
                    "--batch-size", size, ACLQ_REDIS_URL=url)  # fmt: skip
        assert done.returncode == 2 and f"{size!r}: a whole number of at least 1, or auto" in done.stderr
    done = aclq("perf", "--model", "m", "--shape", "x=1,a", ACLQ_REDIS_URL=url)
    assert done.returncode == 2 and "--shape 'x=1,a' must be NAME=D0,D1,... with whole numbers" in done.stderr
    done = aclq("perf", "--model", "m", "--shape", "x=1,4", "--dtype", "float99", ACLQ_REDIS_URL=url)
    assert done.returncode == 2 and "--dtype 'float99'" in done.stderr and "Traceback" not in done.stderr
