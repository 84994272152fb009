"""The pyACL backend's own logic (argument and buffer marshalling), against acl_core's own
pyACL-shaped API (``acl_core.acl``: the same calls, on ONNX Runtime), with every call recorded.
This proves which calls it makes, that it frees what it allocates, and that its marshalling gives
the model's real answer; it proves nothing about CANN itself: on an Ascend host the conformance
suite runs the real ``acl`` module.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from acl_core import acl, codes
from acl_core.backends.base import RunTimedOut
from acl_core.backends.pyacl import PyAclBackend, load_acl
from acl_core.config import RuntimeConfig
from acl_core.constants import MemAttr
from acl_core.errors import AclError, InvalidParamError


class Recording:
    """``acl_core.acl`` (or one of its namespaces) with every call appended to ``calls`` by its
    pyACL name (``rt.malloc``); ``replace`` swaps one call for another."""

    def __init__(self, target: Any, calls: list[str], replace: dict[str, Callable[..., Any]], prefix: str = "") -> None:
        self._target, self.calls, self.replace, self._prefix = target, calls, replace, prefix

    def __getattr__(self, name: str) -> Any:
        path = self._prefix + name
        attr = getattr(self._target, name)
        if name in ("rt", "mdl", "util"):
            return Recording(attr, self.calls, self.replace, path + ".")

        def call(*args: Any) -> Any:
            self.calls.append(path)
            return self.replace.get(path, attr)(*args)

        return call


@pytest.fixture
def recorded(model_path):
    """(the recording acl, the add model's bytes); acl_core's runtime is finalized after each test."""
    with open(model_path("add"), "rb") as f:
        return Recording(acl, [], {}), f.read()


def device_memory_free() -> int:
    free, _, ret = acl.rt.get_mem_info(MemAttr.ACL_HBM_MEM)
    assert ret == 0
    return int(free)


def test_runs_the_pyacl_sequence_and_frees_everything(recorded):
    fake, data = recorded
    backend = PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake)
    assert backend.device_count() >= 1 and backend.device_memory(0) > 0
    model = backend.load(data, 0)
    assert [str(s) for s in model.inputs] == ["a: float32[2, 3]", "b: float32[2, 3]"]
    before = device_memory_free()
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    fake.calls.clear()
    (c,) = model.run({"a": a, "b": a * 10}, timeout_s=0.25)
    np.testing.assert_array_equal(c, a * 11)
    calls = fake.calls
    assert calls.count("mdl.set_exec_config_opt") == 1  # the timeout, on the run's own handle
    assert calls.count("rt.malloc") == 2 and calls.count("rt.free") == 3  # 2 inputs + the output the run made
    for make, free in [
        ("create_data_buffer", "destroy_data_buffer"),
        ("mdl.create_dataset", "mdl.destroy_dataset"),
        ("mdl.create_exec_config_handle", "mdl.destroy_exec_config_handle"),
    ]:
        assert calls.count(make) == calls.count(free) > 0, make
    assert calls.index("mdl.execute_v2") < calls.index("mdl.get_cur_output_dims")
    assert device_memory_free() == before  # acl_core's own accounting: nothing left allocated


def test_timeout_and_errors_become_acl_errors(recorded):
    fake, data = recorded
    model = PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake).load(data, 0)
    a = np.ones((2, 3), np.float32)
    before = device_memory_free()
    fake.replace["mdl.execute_v2"] = lambda *args: codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT
    with pytest.raises(RunTimedOut):
        model.run({"a": a, "b": a}, timeout_s=0.05)
    assert device_memory_free() == before  # freed on the failure path too
    assert fake.calls.count("mdl.destroy_exec_config_handle") == fake.calls.count("mdl.create_exec_config_handle")
    fake.replace["mdl.execute_v2"] = lambda *args: codes.ACL_ERROR_INVALID_PARAM
    fake.replace["get_recent_err_msg"] = lambda: "a message from acl"
    with pytest.raises(InvalidParamError, match="aclmdlExecuteV2: a message from acl"):
        model.run({"a": a, "b": a}, timeout_s=None)


def test_a_model_file_is_loaded_from_where_it_lies(recorded, model_path):
    fake, _ = recorded
    model = PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake).load(Path(model_path("add")), 0)
    assert "mdl.load_from_file" in fake.calls and "mdl.load_from_mem" not in fake.calls
    a = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(model.run({"a": a, "b": a}, timeout_s=None)[0], a * 2)


def test_failed_load_unloads(recorded):
    fake, data = recorded
    fake.replace["mdl.get_desc"] = lambda desc, model_id: codes.ACL_ERROR_INVALID_MODEL_ID
    with pytest.raises(AclError) as info:
        PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake).load(data, 0)
    assert info.value.code == codes.ACL_ERROR_INVALID_MODEL_ID and "mdl.unload" in fake.calls


def test_without_cann_the_backend_says_what_is_missing():
    try:
        import acl  # noqa: F401
    except ImportError:
        with pytest.raises(AclError, match="CANN toolkit's Python 'acl' module") as info:
            load_acl()
        assert info.value.code == codes.ACL_ERROR_RT_NO_DEVICE
    else:
        pytest.skip("the CANN toolkit is installed here: the conformance suite runs the real backend")
