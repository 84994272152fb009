import os
import subprocess
import sys

import pytest

from acl_core import InvalidParamError, acl, codes
from acl_core.config import RuntimeConfig


def test_from_env_defaults_and_values():
    home_cache = os.path.expanduser("~/.cache/aclq/graphs")
    assert RuntimeConfig.from_env({}) == RuntimeConfig("onnxruntime", "auto", None, None, home_cache)
    env = {"ACLQ_PROVIDER": "CPU", "ACLQ_DEVICE_COUNT": "2", "ACLQ_DEVICE_MEMORY_MB": "64", "ACLQ_BACKEND": "pyacl"}
    assert RuntimeConfig.from_env({**env, "XDG_CACHE_HOME": "/c"}) == RuntimeConfig(
        "pyacl", "cpu", 2, 64, "/c/aclq/graphs"
    )
    assert RuntimeConfig.from_env({"ACLQ_GRAPH_CACHE_DIR": ""}).graph_cache_dir is None  # empty: none kept


@pytest.mark.parametrize(
    "env, fragment",
    [
        ({"ACLQ_PROVIDER": "tpu"}, "ACLQ_PROVIDER='tpu'"),
        ({"ACLQ_BACKEND": "tensorrt"}, "ACLQ_BACKEND='tensorrt'"),
        ({"ACLQ_DEVICE_COUNT": "0"}, "ACLQ_DEVICE_COUNT='0' must be a positive integer"),
        ({"ACLQ_DEVICE_MEMORY_MB": "lots"}, "ACLQ_DEVICE_MEMORY_MB='lots'"),
    ],
)
def test_bad_env_is_named(env, fragment):
    with pytest.raises(InvalidParamError, match=fragment):
        RuntimeConfig.from_env(env)


def test_virtual_cpu_devices_and_memory_budget(monkeypatch):
    monkeypatch.setenv("ACLQ_PROVIDER", "cpu")
    monkeypatch.setenv("ACLQ_DEVICE_COUNT", "2")
    monkeypatch.setenv("ACLQ_DEVICE_MEMORY_MB", "1")
    assert acl.init() == 0
    assert acl.rt.get_device_count() == (2, 0)
    assert acl.rt.set_device(1) == 0
    assert acl.rt.get_mem_info(0) == (1 << 20, 1 << 20, 0)
    ptr, ret = acl.rt.malloc(1 << 19, 0)
    assert ret == 0
    assert acl.rt.malloc(1 << 20, 0) == (0, codes.ACL_ERROR_RT_MEMORY_ALLOCATION)
    assert "bytes free" in acl.get_recent_err_msg()
    assert acl.rt.set_device(0) == 0
    assert acl.rt.get_mem_info(0) == (1 << 20, 1 << 20, 0)  # accounted per device


def test_missing_provider_is_an_error_not_a_fallback(monkeypatch):
    monkeypatch.setenv("ACLQ_PROVIDER", "cann")
    assert acl.init() == codes.ACL_ERROR_RT_NO_DEVICE
    assert "CANNExecutionProvider was asked for" in acl.get_recent_err_msg()


# ONNX Runtime keeps quiet by itself where these say it runs in CI: the child runs without them
_CI_VARIABLES = {"CI", "BUILDKITE", "CIRCLECI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD", "TRAVIS"}
_LOAD = "import os, sys, acl_core; acl_core.Device(0).load(sys.argv[1]); print(os.environ['ORT_DISABLE_TELEMETRY'])"


@pytest.mark.parametrize(("given", "kept"), [(None, "1"), ("0", "0")])
def test_onnx_runtime_reports_nothing_unless_the_operator_says_so(model_path, tmp_path, given, kept):
    """ONNX Runtime's telemetry (a device id and an event store under ~/.cache/Microsoft, then
    uploads) is off unless ORT_DISABLE_TELEMETRY is given."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY" and k not in _CI_VARIABLES}
    env.update(
        HOME=str(tmp_path),
        ACLQ_PROVIDER="cpu",
        ACLQ_GRAPH_CACHE_DIR="",
        **({"ORT_DISABLE_TELEMETRY": given} if given else {}),
    )
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, model_path("add")], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == kept
    if given is None:
        assert not (tmp_path / ".cache" / "Microsoft").exists()
