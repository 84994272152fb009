"""The ONNX Runtime backend: ONNX models on the CPU, CUDA or CANN execution provider."""

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from acl_core import codes
from acl_core.backends.base import RunAborted, RunTimedOut, TensorSpec
from acl_core.backends.graph_cache import GraphCache
from acl_core.backends.watchdog import Watchdog
from acl_core.config import RuntimeConfig
from acl_core.discovery import visible_devices
from acl_core.dtypes import ONNX_TO_ACL
from acl_core.errors import AclError, error_for

log = logging.getLogger(__name__)

#: short provider name -> ONNX Runtime's provider name, best first for "auto"
PROVIDER_NAMES = {
    "cann": "CANNExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
_C = ort.capi.onnxruntime_pybind11_state
#: what a run raises for a failure of the run (the engine's, a provider's), not of acl_core's code
_ORT_ERRORS = (_C.Fail, _C.EPFail, _C.InvalidArgument, _C.RuntimeException, _C.NotImplemented, RuntimeError, ValueError)


def _resolve_provider(asked: str) -> str:
    available = ort.get_available_providers()
    if asked == "auto":
        return next(p for p in PROVIDER_NAMES.values() if p in available or p == "CPUExecutionProvider")
    name = PROVIDER_NAMES[asked]
    if name not in available:
        raise error_for(
            codes.ACL_ERROR_RT_NO_DEVICE,
            f"{name} was asked for but this onnxruntime build offers {available}; "
            f"install onnxruntime-gpu (cuda) or onnxruntime-cann (cann)",
        )
    return name


def _spec(node: ort.NodeArg) -> TensorSpec:
    dtype = ONNX_TO_ACL.get(node.type)
    if dtype is None:
        raise error_for(codes.ACL_ERROR_UNSUPPORTED_DATA_TYPE, f"tensor {node.name!r} has type {node.type}")
    dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in node.shape)
    return TensorSpec(node.name, dtype, dims)


def _device_memory(provider: str, config: RuntimeConfig) -> list[int]:
    """Memory per device: CPU devices are virtual; accelerators are the visible ones."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    configured = config.device_memory_mb << 20 if config.device_memory_mb else None
    if provider == "CPUExecutionProvider":
        count = config.device_count or 1
        return [configured or physical // count] * count
    kind = "cuda" if provider == "CUDAExecutionProvider" else "cann"
    visible = visible_devices(kind)[: config.device_count]
    return [configured or d.memory_bytes or physical // max(len(visible), 1) for d in visible]


def inventory(config: RuntimeConfig) -> list[tuple[str, int, int]]:
    """(provider, device id, memory bytes) for every provider this onnxruntime build offers."""
    rows = []
    for short, name in PROVIDER_NAMES.items():
        if name not in ort.get_available_providers():
            continue
        asked = RuntimeConfig(
            provider=short, device_count=config.device_count, device_memory_mb=config.device_memory_mb
        )
        rows += [(name, i, memory) for i, memory in enumerate(_device_memory(name, asked))]
    return rows


class OnnxRuntimeModel:
    """One InferenceSession pinned to one device. Not reentrant: acl_core serialises its runs."""

    def __init__(self, session: ort.InferenceSession, watchdog: Watchdog) -> None:
        self._session = session  # owns what _session_run calls
        self._watchdog = watchdog
        self.inputs = tuple(_spec(n) for n in session.get_inputs())
        self.outputs = tuple(_spec(n) for n in session.get_outputs())
        self.provider = session.get_providers()[0]
        self._output_names = [o.name for o in self.outputs]
        # InferenceSession.run checks the feeds' names again (acl_core matched them to the inputs)
        # and, when an execution provider fails, prints to stdout and retries on the CPU: a silent
        # fallback acl_core refuses. The C binding it wraps is called instead (1.5-2 us a call).
        self._session_run = session._sess.run
        # Reused by every run (runs of one model never overlap); terminate is reset before each.
        self._options = ort.RunOptions()
        self._options.log_severity_level = 4  # failures are raised as AclErrors, not logged twice
        self._terminated = self._aborted = False

    def run(self, feeds: Mapping[str, np.ndarray], timeout_s: float | None) -> list[np.ndarray]:
        self._options.terminate = self._terminated = self._aborted = False
        try:
            if timeout_s is None:
                return self._run(feeds)
            with self._watchdog.deadline(timeout_s, self._terminate):
                return self._run(feeds)
        except AclError:
            if self._aborted:
                raise RunAborted() from None
            if self._terminated:
                raise RunTimedOut() from None
            raise

    def _terminate(self) -> None:
        self._terminated = True
        self._options.terminate = True

    def abort(self) -> None:
        # RunOptions.terminate is ONNX Runtime's own way to stop a run from another thread.
        self._aborted = True
        self._options.terminate = True

    def _run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return self._session_run(self._output_names, feeds, self._options)  # type: ignore[no-any-return]
        except _ORT_ERRORS as exc:
            raise error_for(codes.ACL_ERROR_RT_MODEL_EXECUTE, f"ONNX Runtime: {exc}") from None


class OnnxRuntimeBackend:
    """Devices on one execution provider; CPU devices are virtual and split the cores."""

    name = "onnxruntime"

    def __init__(self, config: RuntimeConfig) -> None:
        self.provider = _resolve_provider(config.provider)
        self._memory = _device_memory(self.provider, config)
        if not self._memory:
            raise error_for(
                codes.ACL_ERROR_RT_NO_DEVICE,
                f"{self.provider} sees no device (CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES, or no driver)",
            )
        cores = len(os.sched_getaffinity(0))
        cpu = self.provider == "CPUExecutionProvider"
        self._threads = max(1, cores // len(self._memory)) if cpu else 0
        self._watchdog = Watchdog()
        # accelerator providers compile parts of a graph into nodes ORT cannot write out
        self._graphs = GraphCache(config.graph_cache_dir) if cpu and config.graph_cache_dir else None

    def device_count(self) -> int:
        return len(self._memory)

    def device_memory(self, device_id: int) -> int:
        return self._memory[device_id]

    def load(self, model: bytes | Path, device_id: int) -> OnnxRuntimeModel:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        providers: list[str | tuple[str, dict[str, object]]] = ["CPUExecutionProvider"]
        if self.provider != "CPUExecutionProvider":
            # The CPU provider stays listed for the nodes an accelerator cannot run, as ORT needs.
            providers.insert(0, (self.provider, {"device_id": device_id}))
        try:
            if self._graphs is not None:
                session = self._graphs.session(model, options, providers)
            else:
                session = ort.InferenceSession(
                    model if isinstance(model, bytes) else str(model), options, providers=providers
                )
        except Exception as exc:  # ORT raises a zoo of pybind classes for unparseable bytes
            raise error_for(codes.ACL_ERROR_PARSE_MODEL, f"not a model ONNX Runtime can load: {exc}") from None
        if session.get_providers()[0] != self.provider:
            raise error_for(
                codes.ACL_ERROR_RT_NO_DEVICE,
                f"{self.provider} did not take device {device_id}; got {session.get_providers()}",
            )
        log.debug("loaded a model on device %d with %s", device_id, self.provider)
        return OnnxRuntimeModel(session, self._watchdog)
