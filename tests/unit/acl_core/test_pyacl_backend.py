"""The pyACL backend's own logic (argument and buffer marshalling), against a recording
stand-in for the CANN ``acl`` module. This proves which calls it makes and what it frees; it
proves nothing about a real device. On an Ascend host the conformance suite runs the real one.
"""

from types import SimpleNamespace

import numpy as np
import pytest

from acl_core import codes
from acl_core.backends.base import RunTimedOut
from acl_core.backends.pyacl import PyAclBackend, load_acl
from acl_core.config import RuntimeConfig
from acl_core.errors import AclError, InvalidParamError


class FakeAcl:
    """Enough of pyACL for one model: c = a + b on float32[2, 3], with host memory as 'device'."""

    def __init__(self, execute_ret: int = 0) -> None:
        self.calls: list[str] = []
        self.memory: dict[int, np.ndarray] = {}
        self.buffers: dict[int, list[int]] = {}
        self.datasets: dict[int, list[int]] = {}
        self.handles: dict[int, dict[int, int]] = {}
        self.execute_ret = execute_ret
        self._next = 1000
        acl = self

        def record(name, result):
            def call(*args):
                acl.calls.append(name)
                return result(*args) if callable(result) else result

            return call

        self.init = record("init", 0)
        self.get_recent_err_msg = record("get_recent_err_msg", "fake message")
        self.create_data_buffer = record("create_data_buffer", self._create_buffer)
        self.destroy_data_buffer = record("destroy_data_buffer", lambda b: self.buffers.pop(b) and 0)
        self.get_data_buffer_addr = record("get_data_buffer_addr", lambda b: self.buffers[b][0])
        self.get_data_buffer_size_v2 = record("get_data_buffer_size_v2", lambda b: self.buffers[b][1])
        self.rt = SimpleNamespace(
            get_device_count=record("rt.get_device_count", (2, 0)),
            set_device=record("rt.set_device", 0),
            create_context=record("rt.create_context", ("ctx", 0)),
            create_stream=record("rt.create_stream", ("stream", 0)),
            set_context=record("rt.set_context", 0),
            get_mem_info=record("rt.get_mem_info", (1 << 30, 2 << 30, 0)),
            malloc=record("rt.malloc", self._malloc),
            free=record("rt.free", lambda p: self.memory.pop(p) is not None and 0),
            memcpy=record("rt.memcpy", self._memcpy),
        )
        desc = {"inputs": [("a", [2, 3]), ("b", [2, 3])], "outputs": [("c", [2, 3])]}
        dims = lambda kind: lambda d, i: ({"name": desc[kind][i][0], "dimCount": 2, "dims": desc[kind][i][1]}, 0)  # noqa: E731
        self.mdl = SimpleNamespace(
            load_from_mem=record("mdl.load_from_mem", (7, 0)),
            unload=record("mdl.unload", 0),
            create_desc=record("mdl.create_desc", 1),
            get_desc=record("mdl.get_desc", 0),
            get_num_inputs=record("mdl.get_num_inputs", 2),
            get_num_outputs=record("mdl.get_num_outputs", 1),
            get_input_dims=record("mdl.get_input_dims", dims("inputs")),
            get_output_dims=record("mdl.get_output_dims", dims("outputs")),
            get_cur_output_dims=record("mdl.get_cur_output_dims", dims("outputs")),
            get_input_data_type=record("mdl.get_input_data_type", 0),
            get_output_data_type=record("mdl.get_output_data_type", 0),
            get_input_name_by_index=record("mdl.get_input_name_by_index", lambda d, i: desc["inputs"][i][0]),
            get_output_name_by_index=record("mdl.get_output_name_by_index", lambda d, i: desc["outputs"][i][0]),
            create_dataset=record("mdl.create_dataset", self._create_dataset),
            destroy_dataset=record("mdl.destroy_dataset", lambda d: self.datasets.pop(d) is not None and 0),
            add_dataset_buffer=record("mdl.add_dataset_buffer", lambda d, b: (self.datasets[d].append(b), (d, 0))[1]),
            get_dataset_buffer=record("mdl.get_dataset_buffer", lambda d, i: self.datasets[d][i]),
            create_exec_config_handle=record("mdl.create_exec_config_handle", self._create_handle),
            set_exec_config_opt=record("mdl.set_exec_config_opt", lambda h, a, v: self.handles[h].update({a: v}) or 0),
            destroy_exec_config_handle=record("mdl.destroy_exec_config_handle", lambda h: self.handles.pop(h) and 0),
            execute_v2=record("mdl.execute_v2", self._execute),
        )
        self.util = SimpleNamespace(
            numpy_to_ptr=lambda a: a.__array_interface__["data"][0],
            bytes_to_ptr=lambda b: 1,
        )
        self.host: dict[int, np.ndarray] = {}

    def _id(self) -> int:
        self._next += 1
        return self._next

    def _create_buffer(self, ptr, size):
        b = self._id()
        self.buffers[b] = [ptr, size]
        return b

    def _create_dataset(self):
        d = self._id()
        self.datasets[d] = []
        return d

    def _create_handle(self):
        h = self._id()
        self.handles[h] = {}
        return h

    def _malloc(self, size, policy):
        arr = np.zeros(size, np.uint8)
        self.memory[arr.__array_interface__["data"][0]] = arr
        return arr.__array_interface__["data"][0], 0

    def _memcpy(self, dst, dst_max, src, count, kind):
        import ctypes

        ctypes.memmove(dst, src, count)
        return 0

    def _execute(self, model_id, inputs, outputs, stream, handle):
        if self.execute_ret:
            return self.execute_ret
        a, b = (self.memory[self.buffers[buf][0]].view(np.float32) for buf in self.datasets[inputs])
        c = (a + b).view(np.uint8).copy()
        self.memory[c.__array_interface__["data"][0]] = c
        self.buffers[self.datasets[outputs][0]] = [c.__array_interface__["data"][0], c.nbytes]
        return 0


@pytest.fixture
def fake():
    return FakeAcl()


def test_runs_the_pyacl_sequence_and_frees_everything(fake):
    backend = PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake)
    assert backend.device_count() == 2 and backend.device_memory(0) == 2 << 30
    model = backend.load(b"om bytes", 1)
    assert [str(s) for s in model.inputs] == ["a: float32[2, 3]", "b: float32[2, 3]"]
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    (c,) = model.run({"a": a, "b": a * 10}, timeout_s=0.25)
    np.testing.assert_array_equal(c, a * 11)
    handle_opts = [c for c in fake.calls if c == "mdl.set_exec_config_opt"]
    assert handle_opts == ["mdl.set_exec_config_opt"]
    assert fake.memory == {} and fake.buffers == {} and fake.datasets == {} and fake.handles == {}
    run_calls = fake.calls[fake.calls.index("rt.set_context", fake.calls.index("mdl.load_from_mem") + 1) :]
    assert run_calls.count("rt.malloc") == 2 and run_calls.count("rt.free") == 3  # 2 inputs + 1 output
    assert run_calls.index("mdl.execute_v2") < run_calls.index("mdl.get_cur_output_dims")


def test_timeout_and_errors_become_acl_errors(fake):
    backend = PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake)
    model = backend.load(b"om", 0)
    a = np.ones((2, 3), np.float32)
    fake.execute_ret = codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT
    with pytest.raises(RunTimedOut):
        model.run({"a": a, "b": a}, timeout_s=0.05)
    assert fake.handles == {} and fake.memory == {}  # freed on the failure path too
    fake.execute_ret = codes.ACL_ERROR_INVALID_PARAM
    with pytest.raises(InvalidParamError, match="aclmdlExecuteV2: fake message"):
        model.run({"a": a, "b": a}, timeout_s=None)


def test_failed_load_unloads(fake):
    fake.mdl.get_desc = lambda d, m: codes.ACL_ERROR_INVALID_MODEL_ID
    with pytest.raises(AclError) as info:
        PyAclBackend(RuntimeConfig(backend="pyacl"), acl=fake).load(b"om", 0)
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
