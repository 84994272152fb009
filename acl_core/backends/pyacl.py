"""The pyACL backend: .om models through the CANN toolkit's own ``acl`` module.

A thin one-to-one mapping: each run is the pyACL sequence a sample program would write (device
buffers, datasets, an exec-config handle, ``execute_v2`` on a stream, runtime-allocated
outputs read back and freed), and every non-zero return becomes the same AclError the rest of
acl_core raises. It runs only where CANN is installed (an Ascend host); elsewhere
:func:`load_acl` says so. The marshalling is unit-tested against a recording stand-in for
``acl`` (tests/unit/acl_core/test_pyacl_backend.py), which proves the calls, not the device.
"""

import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from acl_core import codes
from acl_core.backends.base import RunTimedOut, TensorSpec
from acl_core.config import RuntimeConfig
from acl_core.constants import ExecConfigAttr, MallocPolicy, MemcpyKind
from acl_core.dtypes import ACL_TO_NUMPY, DataType
from acl_core.errors import AclError, error_for

_TIMEOUT_CODES = (codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT, codes.ACL_ERROR_RT_EVENT_SYNC_TIMEOUT)
_HBM = 1  # aclrtMemAttr ACL_HBM_MEM


def load_acl() -> ModuleType:
    """The CANN toolkit's ``acl`` module, or 207004 saying it is not installed."""
    try:
        import acl
    except ImportError:
        raise error_for(
            codes.ACL_ERROR_RT_NO_DEVICE,
            "ACLQ_BACKEND=pyacl needs the CANN toolkit's Python 'acl' module (source set_env.sh)",
        ) from None
    return acl  # type: ignore[no-any-return]


class _Calls:
    """Calls into ``acl`` that raise AclError on a non-zero return, with ACL's own message."""

    def __init__(self, acl: Any) -> None:
        self.acl = acl

    def check(self, ret: int, what: str) -> None:
        if ret != codes.ACL_SUCCESS:
            raise error_for(ret, f"{what}: {self.acl.get_recent_err_msg() or 'no message'}")

    def value(self, result: tuple[Any, int], what: str) -> Any:
        value, ret = result
        self.check(ret, what)
        return value


class PyAclModel:
    """One .om model loaded on one device through pyACL."""

    def __init__(self, calls: _Calls, context: Any, stream: Any, model_id: int) -> None:
        self._calls, self._context, self._stream, self._model_id = calls, context, stream, model_id
        acl = calls.acl
        self._desc = acl.mdl.create_desc()
        calls.check(acl.mdl.get_desc(self._desc, model_id), "aclmdlGetDesc")
        self.inputs = tuple(self._spec(i, False) for i in range(acl.mdl.get_num_inputs(self._desc)))
        self.outputs = tuple(self._spec(i, True) for i in range(acl.mdl.get_num_outputs(self._desc)))
        self.provider = "pyACL"

    def _spec(self, index: int, output: bool) -> TensorSpec:
        mdl = self._calls.acl.mdl
        dims_of, type_of, name_of = (
            (mdl.get_output_dims, mdl.get_output_data_type, mdl.get_output_name_by_index)
            if output
            else (mdl.get_input_dims, mdl.get_input_data_type, mdl.get_input_name_by_index)
        )
        dims = self._calls.value(dims_of(self._desc, index), "aclmdlGetDims")
        return TensorSpec(name_of(self._desc, index), DataType(type_of(self._desc, index)), tuple(dims["dims"]))

    def run(self, feeds: Mapping[str, np.ndarray], timeout_s: float | None) -> list[np.ndarray]:
        acl, calls = self._calls.acl, self._calls
        if any(s.is_dynamic for s in self.inputs):
            raise error_for(codes.ACL_ERROR_API_NOT_SUPPORT, "dynamic-shape .om models are not mapped yet")
        calls.check(acl.rt.set_context(self._context), "aclrtSetCurrentContext")
        owned: list[int] = []  # device memory to free, whatever happens
        buffers: list[Any] = []
        inputs, outputs = acl.mdl.create_dataset(), acl.mdl.create_dataset()
        handle = acl.mdl.create_exec_config_handle()
        try:
            for spec in self.inputs:
                host = np.ascontiguousarray(feeds[spec.name])
                ptr = calls.value(acl.rt.malloc(host.nbytes, MallocPolicy.ACL_MEM_MALLOC_HUGE_FIRST), "aclrtMalloc")
                owned.append(ptr)
                src = acl.util.numpy_to_ptr(host)
                calls.check(
                    acl.rt.memcpy(ptr, host.nbytes, src, host.nbytes, MemcpyKind.ACL_MEMCPY_HOST_TO_DEVICE), "memcpy"
                )
                buffers.append(acl.create_data_buffer(ptr, host.nbytes))
                calls.value(acl.mdl.add_dataset_buffer(inputs, buffers[-1]), "aclmdlAddDatasetBuffer")
            for _ in self.outputs:  # (null, 0): the runtime allocates each output
                buffers.append(acl.create_data_buffer(0, 0))
                calls.value(acl.mdl.add_dataset_buffer(outputs, buffers[-1]), "aclmdlAddDatasetBuffer")
            if timeout_s is not None:
                ms = max(1, round(timeout_s * 1000))
                calls.check(acl.mdl.set_exec_config_opt(handle, ExecConfigAttr.ACL_MDL_STREAM_SYNC_TIMEOUT, ms), "opt")
            ret = acl.mdl.execute_v2(self._model_id, inputs, outputs, self._stream, handle)
            if ret in _TIMEOUT_CODES:
                raise RunTimedOut()
            calls.check(ret, "aclmdlExecuteV2")
            return [self._read_output(outputs, i, owned) for i in range(len(self.outputs))]
        finally:
            for ptr in owned:
                acl.rt.free(ptr)
            for buf in buffers:
                acl.destroy_data_buffer(buf)
            acl.mdl.destroy_dataset(inputs)
            acl.mdl.destroy_dataset(outputs)
            acl.mdl.destroy_exec_config_handle(handle)

    def abort(self) -> None:
        """A synchronous aclmdlExecuteV2 cannot be stopped from outside: the run finishes (or
        its ACL timeout ends it)."""

    def _read_output(self, outputs: Any, index: int, owned: list[int]) -> np.ndarray:
        acl, calls = self._calls.acl, self._calls
        buf = acl.mdl.get_dataset_buffer(outputs, index)
        ptr, size = acl.get_data_buffer_addr(buf), acl.get_data_buffer_size_v2(buf)
        owned.append(ptr)  # runtime-allocated: ours to free
        dims = calls.value(acl.mdl.get_cur_output_dims(self._desc, index), "aclmdlGetCurOutputDims")["dims"]
        host = np.empty(dims, dtype=ACL_TO_NUMPY[self.outputs[index].dtype])
        if host.nbytes != size:
            raise error_for(codes.ACL_ERROR_MODEL_OUTPUT_NOT_MATCH, f"output {index}: {size} bytes for shape {dims}")
        dst = acl.util.numpy_to_ptr(host)
        calls.check(acl.rt.memcpy(dst, size, ptr, size, MemcpyKind.ACL_MEMCPY_DEVICE_TO_HOST), "memcpy")
        return host


class PyAclBackend:
    """Ascend devices through the real pyACL: one context and stream per device."""

    name = "pyacl"
    provider = "pyACL"

    def __init__(self, config: RuntimeConfig, acl: Any = None) -> None:
        self._calls = _Calls(acl if acl is not None else load_acl())
        self._lock = threading.Lock()
        self._devices: dict[int, tuple[Any, Any]] = {}
        self._configured_mb = config.device_memory_mb
        ret = self._calls.acl.init()
        if ret not in (codes.ACL_SUCCESS, codes.ACL_ERROR_REPEAT_INITIALIZE):
            self._calls.check(ret, "aclInit")
        count = self._calls.value(self._calls.acl.rt.get_device_count(), "aclrtGetDeviceCount")
        self._count = int(min(count, config.device_count or count))

    def device_count(self) -> int:
        return self._count

    def _bound(self, device_id: int) -> tuple[Any, Any]:
        """The device's context and stream, created on first use."""
        with self._lock:
            if device_id not in self._devices:
                acl, calls = self._calls.acl, self._calls
                calls.check(acl.rt.set_device(device_id), "aclrtSetDevice")
                context = calls.value(acl.rt.create_context(device_id), "aclrtCreateContext")
                stream = calls.value(acl.rt.create_stream(), "aclrtCreateStream")
                self._devices[device_id] = (context, stream)
            return self._devices[device_id]

    def device_memory(self, device_id: int) -> int:
        if self._configured_mb:
            return self._configured_mb << 20
        context, _ = self._bound(device_id)
        self._calls.check(self._calls.acl.rt.set_context(context), "aclrtSetCurrentContext")
        free, total, ret = self._calls.acl.rt.get_mem_info(_HBM)
        self._calls.check(ret, "aclrtGetMemInfo")
        return int(total)

    def load(self, model: bytes | Path, device_id: int) -> PyAclModel:
        acl, calls = self._calls.acl, self._calls
        context, stream = self._bound(device_id)
        calls.check(acl.rt.set_context(context), "aclrtSetCurrentContext")
        if isinstance(model, Path):
            model_id = calls.value(acl.mdl.load_from_file(str(model)), "aclmdlLoadFromFile")
        else:
            # pyACL reads the model from host memory during the call; `model` outlives it here.
            loaded = acl.mdl.load_from_mem(acl.util.bytes_to_ptr(model), len(model))
            model_id = calls.value(loaded, "aclmdlLoadFromMem")
        try:
            return PyAclModel(calls, context, stream, model_id)
        except AclError:
            acl.mdl.unload(model_id)
            raise
