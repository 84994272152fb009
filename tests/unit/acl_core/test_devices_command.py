"""`aclq devices`: every backend's view of this host, as a table or JSON lines."""

import json
import os
import subprocess
import sys


def _devices(*args, **env):
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli", "devices", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def test_table_lists_virtual_cpu_devices_and_absent_backends():
    out = _devices(ACLQ_DEVICE_COUNT="2", ACLQ_DEVICE_MEMORY_MB="1024")
    lines = out.splitlines()
    assert lines[0].split() == ["backend", "provider", "device", "memory", "note"]
    assert [line.split()[:5] for line in lines[1:3]] == [
        ["onnxruntime", "CPUExecutionProvider", "0", "1.0", "GiB"],
        ["onnxruntime", "CPUExecutionProvider", "1", "1.0", "GiB"],
    ]
    assert "pyacl" in lines[-1] and "not available" in lines[-1]


def test_json_lines():
    rows = [json.loads(line) for line in _devices("--json", ACLQ_DEVICE_COUNT="3").splitlines()]
    cpu = [r for r in rows if r["provider"] == "CPUExecutionProvider"]
    assert [r["device"] for r in cpu] == [0, 1, 2] and all(r["memory_bytes"] > 0 for r in cpu)
