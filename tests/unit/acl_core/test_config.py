import os

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
