"""The Pythonic API: a device, its models, and execute(dict) -> dict, raising AclError.

It runs the execution the flat API's aclmdlExecuteV2 runs (runtime-allocated outputs, an
exec-config handle, the device's stream), on the same code; inputs are the caller's arrays,
checked against the model's description and fed as they are, not copied into device memory.
"""

import functools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import numpy as np

from acl_core import codes
from acl_core.backends.base import TensorSpec
from acl_core.constants import ExecConfigAttr
from acl_core.dataset import DataBuffer, Dataset
from acl_core.errors import InvalidParamError, error_for
from acl_core.exec_config import ExecConfigHandle
from acl_core.memory import MemoryStats
from acl_core.model import LoadedModel, Runs, execute, model_file
from acl_core.runtime import RUNTIME


@dataclass(frozen=True)
class ExecConfig:
    """Per-execution options, applied through an exec-config handle (-1 = no timeout)."""

    stream_sync_timeout_ms: int = -1
    event_sync_timeout_ms: int = -1

    def handle(self) -> ExecConfigHandle:
        """Create a handle and set each option on it, validated as aclmdlSetExecConfigOpt does."""
        handle = ExecConfigHandle()
        handle.set(ExecConfigAttr.ACL_MDL_STREAM_SYNC_TIMEOUT, self.stream_sync_timeout_ms)
        handle.set(ExecConfigAttr.ACL_MDL_EVENT_SYNC_TIMEOUT, self.event_sync_timeout_ms)
        return handle


_NO_OPTIONS = ExecConfig()


@functools.lru_cache(maxsize=64)
def _cached_handle(stream_sync_timeout_ms: int, event_sync_timeout_ms: int) -> ExecConfigHandle:
    return ExecConfig(stream_sync_timeout_ms, event_sync_timeout_ms).handle()


def _handle_of(config: ExecConfig) -> ExecConfigHandle:
    """The handle of ``config``, one per distinct config: building one validates each option
    (~4 us a call), and an execution only reads it."""
    values = (config.stream_sync_timeout_ms, config.event_sync_timeout_ms)
    # Only exact ints are looked up: to a cache True is 1 and 200.0 is 200, to ACL's checks not.
    if all(type(v) is int for v in values):
        return _cached_handle(*values)
    return config.handle()  # refuses, naming the value


class Device:
    """One ACL device with its own context and stream; ``with Device(0) as dev: ...``."""

    def __init__(self, device_id: int = 0) -> None:
        RUNTIME.ensure_initialized()
        self.id = device_id
        self._context = RUNTIME.create_context(device_id)
        self._stream = RUNTIME.create_stream()
        self._models: list[Model] = []

    @property
    def provider(self) -> str:
        """The engine and execution provider this device runs on."""
        return str(getattr(RUNTIME.backend, "provider", RUNTIME.backend.name))

    def load(self, model: str | os.PathLike[str] | bytes) -> "Model":
        """Load a model from a file path or from serialized bytes."""
        source = model if isinstance(model, bytes) else model_file(os.fspath(model))
        RUNTIME.set_current_context(self._context)
        loaded = Model(self, RUNTIME.load_model(source))
        self._models.append(loaded)
        return loaded

    def memory(self) -> MemoryStats:
        """Device memory accounting: bytes in use, peak, live allocations, total."""
        return RUNTIME.memory.stats(self.id)

    def close(self) -> None:
        """Unload this device's models and release its context."""
        for model in self._models:
            model.unload()
        self._models.clear()
        RUNTIME.destroy_context(self._context)

    def __enter__(self) -> "Device":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        stats = self.memory()
        return f"<Device {self.id} {self.provider} models={len(self._models)} in_use={stats.in_use}B>"


class Model:
    """A loaded model: its description and ``execute``."""

    def __init__(self, device: Device, loaded: LoadedModel) -> None:
        self._device = device
        self._loaded: LoadedModel | None = loaded
        self.id = loaded.model_id
        self.inputs: tuple[TensorSpec, ...] = loaded.inputs
        self.outputs: tuple[TensorSpec, ...] = loaded.outputs
        self.provider: str = loaded.engine.provider

    def execute(
        self,
        feeds: Mapping[str, np.ndarray],
        config: ExecConfig | None = None,
        *,
        output_names: Sequence[str] | None = None,
        runs: Runs | None = None,
    ) -> dict[str, np.ndarray]:
        """Run once on the device's stream; returns outputs by name (all, or ``output_names``).

        Inputs are checked against the description first (names, dtypes, shapes) and fed
        without a copy; outputs are runtime-allocated and handed over without a copy. With
        ``runs`` (:class:`acl_core.model.Runs`), the rows go to the engine in runs of the sizes
        it gives, joined back: the same outputs, ``config``'s timeout covering every run.
        """
        loaded = self._live()
        wanted = self._output_names(output_names)
        checked = self._feeds(feeds)
        outputs = Dataset()
        outputs.buffers = [DataBuffer(0, 0) for _ in self.outputs]
        handle = _handle_of(config or _NO_OPTIONS)
        RUNTIME.check_stream(self._device._stream)
        memory = RUNTIME.memory
        try:
            execute(loaded, checked, outputs, handle, memory, runs)
        finally:
            # Runtime-allocated outputs are ours to free, on success or not.
            arrays = [memory.free(b.ptr) if b.ptr else None for b in outputs.buffers]
        return {
            spec.name: raw[: buf.size].view(spec.numpy_dtype).reshape(shape)
            for spec, buf, raw, shape in zip(self.outputs, outputs.buffers, arrays, outputs.shapes)
            if spec.name in wanted and raw is not None
        }

    def abort(self) -> None:
        """Terminate this model's execution in progress, if any, from another thread: it fails
        with 500003 (ACL_ERROR_RT_FAILURE). Not an ACL call: ACL has no abort of one synchronous
        execution; on the pyACL backend a run in progress runs to its end. An execution in runs
        (``runs=``) stops before its next run."""
        loaded = self._loaded
        if loaded is not None:
            loaded.aborted = True
            loaded.engine.abort()

    def unload(self) -> None:
        """aclmdlUnload; the model cannot execute afterwards."""
        if self._loaded is not None:
            RUNTIME.models.unload(self._loaded.model_id)
            self._loaded = None

    def _live(self) -> LoadedModel:
        if self._loaded is None:
            raise error_for(codes.ACL_ERROR_INVALID_MODEL_ID, f"model {self.id} was unloaded")
        return self._loaded

    def _output_names(self, names: Sequence[str] | None) -> set[str]:
        known = [s.name for s in self.outputs]
        if names is None:
            return set(known)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise error_for(
                codes.ACL_ERROR_MODEL_OUTPUT_NOT_MATCH, f"unknown outputs {unknown}; model outputs: {known}"
            )
        return set(names)

    def _feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not isinstance(feeds, Mapping):
            raise InvalidParamError(f"inputs must map input names to arrays, got {type(feeds).__name__}")
        if len(feeds) != len(self.inputs) or any(s.name not in feeds for s in self.inputs):
            missing = [s.name for s in self.inputs if s.name not in feeds]
            unknown = [n for n in feeds if n not in {s.name for s in self.inputs}]
            described = ", ".join(str(s) for s in self.inputs)
            problems = (("missing", missing), ("unknown", unknown))
            wrong = ", ".join(f"{kind} inputs {names}" for kind, names in problems if names)
            raise error_for(codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH, f"{wrong}; model inputs: {described}")
        checked = {}
        for spec in self.inputs:
            array = np.asarray(feeds[spec.name], order="C")  # ascontiguousarray would make 0-d 1-d
            _check_input(spec, array)
            checked[spec.name] = array
        return checked


def _check_input(spec: TensorSpec, array: np.ndarray) -> None:
    if array.dtype != spec.numpy_dtype:
        raise error_for(
            codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH,
            f"input {spec.name!r} expects {spec.numpy_dtype.name}, got {array.dtype.name} ({spec})",
        )
    if array.ndim != len(spec.dims) or any(d >= 0 and d != a for d, a in zip(spec.dims, array.shape)):
        raise error_for(
            codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH,
            f"input {spec.name!r} expects shape {[('?' if d < 0 else d) for d in spec.dims]}, got {list(array.shape)}",
        )
