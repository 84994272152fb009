"""The example programs the docs point at run as written."""

import subprocess
import sys


def test_acl_sample_runs(model_repo):
    done = subprocess.run(
        [sys.executable, "-m", "examples.acl_sample", str(model_repo)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("y: shape [4, 10], argmax [")
