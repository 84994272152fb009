"""Loaded models, their descriptions, and execution (aclmdlExecute / aclmdlExecuteV2)."""

import itertools
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from acl_core import codes
from acl_core.backends.base import Backend, BackendModel, RunAborted, RunTimedOut, TensorSpec
from acl_core.dataset import Dataset
from acl_core.errors import AclError, InvalidParamError, error_for
from acl_core.exec_config import ExecConfigHandle
from acl_core.memory import DeviceMemory


@dataclass(eq=False)
class LoadedModel:
    """A model id's state: what the engine loaded, and the lock ACL asks callers to hold."""

    model_id: int
    device_id: int
    engine: BackendModel
    # ACL requires one model id not to run on several threads at once; held here, inside.
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: output shapes of the last execution (aclmdlGetCurOutputDims)
    last_output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    #: Model.abort was called since the execution in progress began: one in runs stops before
    #: its next run (the engine's own abort reaches the run in progress only)
    aborted: bool = False

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.engine.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.engine.outputs


def model_file(path: str) -> Path:
    """A model file the engine may load from where it lies (no copy of its bytes in Python):
    100003 if there is no such file, 100014 if it can't be read, 100013 if it is empty."""
    try:
        with open(path, "rb") as f:
            empty = not f.read(1)
    except FileNotFoundError:
        raise error_for(codes.ACL_ERROR_INVALID_FILE, f"model file {path!r} does not exist") from None
    except OSError as exc:
        raise error_for(codes.ACL_ERROR_READ_MODEL_FAILURE, f"model file {path!r}: {exc.strerror}") from None
    except (TypeError, ValueError):
        raise InvalidParamError(f"model path {path!r} is not a path") from None
    if empty:
        raise error_for(codes.ACL_ERROR_PARSE_MODEL, f"model file {path!r} is empty")
    return Path(path)


class ModelRegistry:
    """Model ids of the process, as aclmdlLoad* hands them out."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._models: dict[int, LoadedModel] = {}
        self._ids = itertools.count(1)

    def load(self, model: bytes | Path, device_id: int) -> LoadedModel:
        """``model``: serialized bytes, or a file checked by :func:`model_file`."""
        if not model:
            raise error_for(codes.ACL_ERROR_PARSE_MODEL, "model bytes are empty")
        engine = self._backend.load(model, device_id)
        with self._lock:
            loaded = LoadedModel(next(self._ids), device_id, engine)
            self._models[loaded.model_id] = loaded
        return loaded

    def get(self, model_id: object) -> LoadedModel:
        model = self._models.get(model_id) if type(model_id) is int else None
        if model is None:
            raise error_for(codes.ACL_ERROR_INVALID_MODEL_ID, f"no model is loaded with id {model_id!r}")
        return model

    def unload(self, model_id: object) -> None:
        model = self.get(model_id)
        with self._lock:
            self._models.pop(model.model_id, None)

    def clear(self) -> None:
        with self._lock:
            self._models.clear()


def feeds_of(model: LoadedModel, inputs: Dataset, memory: DeviceMemory) -> dict[str, np.ndarray]:
    """What the engine reads for an input dataset: views of its device memory, in the shapes
    the dataset's buffers and dynamic settings give (100012 where they do not fit)."""
    return {spec.name: _input_array(spec, i, inputs, memory) for i, spec in enumerate(_matched(model, inputs))}


class Runs(Protocol):
    """How one execution goes to the engine in parts (``Model.execute(runs=)``): its rows, the
    first axis every input shares, in runs of the sizes ``next`` gives, the outputs joined back.
    A model's time a row depends on the rows a run takes, so a caller may measure sizes on the
    runs themselves (``record``). Splitting never changes an answer: where the engine refuses a
    run's size, or a run's outputs do not keep its rows, the execution runs at once
    (``refuse``)."""

    def next(self, done: int, rows: int) -> int:
        """Rows of the next run, ``done`` of the execution's ``rows`` having run; an AclError
        raised here ends the execution (e.g. the caller's cancel)."""
        ...

    def record(self, rows: int, seconds: float) -> None:
        """A run of ``rows`` rows took ``seconds`` in the engine (every run, those at once too)."""
        ...

    def refuse(self, rows: int | None) -> None:
        """The engine refused a run of ``rows`` rows, or (None) a run's outputs lacked its rows:
        the execution ran at once instead."""
        ...


#: errors of a run that end its execution (its time, an abort), rather than refuse the run's size
_ENDING = (codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT, codes.ACL_ERROR_RT_EVENT_SYNC_TIMEOUT, codes.ACL_ERROR_RT_FAILURE)


def execute(
    model: LoadedModel,
    feeds: Mapping[str, np.ndarray],
    outputs: Dataset,
    config: ExecConfigHandle | None,
    memory: DeviceMemory,
    runs: Runs | None = None,
) -> None:
    """Run ``model`` on ``feeds`` (its inputs by name, already checked: :func:`feeds_of`, or
    the Pythonic API's own checks) into ``outputs``; ``config`` None means no options apply.
    With ``runs``, the rows go to the engine in runs (:class:`Runs`) under the model's lock and
    one deadline: the config's timeout covers the execution, all its runs together."""
    _check_outputs(model, outputs)
    deadline = config.deadline() if config is not None else None
    with model.lock:
        rows = _shared_rows(feeds) if runs is not None else 0
        if runs is None or rows < 2:
            results = _run(model, feeds, deadline)
        else:
            results = _in_runs(model, feeds, rows, deadline, runs)
        model.last_output_shapes = [r.shape for r in results]
    _write_outputs(model, outputs, results, memory)


def _run(
    model: LoadedModel,
    feeds: Mapping[str, np.ndarray],
    deadline: tuple[float, int] | None,
    ends: float | None = None,
    progress: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """One engine run, within ``deadline`` (seconds, the code it fails with), or by ``ends``
    (time.monotonic) when the execution's deadline spans several runs (``progress``: rows run,
    of all)."""
    timeout_s = None
    if deadline is not None:
        timeout_s = deadline[0] if ends is None else ends - time.monotonic()
        if timeout_s <= 0:
            raise _timed_out(deadline, progress)
    try:
        return model.engine.run(feeds, timeout_s)
    except RunTimedOut:
        assert deadline is not None
        raise _timed_out(deadline, progress) from None
    except RunAborted:
        raise error_for(codes.ACL_ERROR_RT_FAILURE, "execution aborted (Model.abort)") from None


def _timed_out(deadline: tuple[float, int], progress: tuple[int, int] | None) -> AclError:
    where = "and was terminated" if progress is None else f"after {progress[0]} of its {progress[1]} rows"
    return error_for(deadline[1], f"execution outlived its {deadline[0] * 1000:g} ms timeout {where}")


def _in_runs(
    model: LoadedModel, feeds: Mapping[str, np.ndarray], rows: int, deadline: tuple[float, int] | None, runs: Runs
) -> list[np.ndarray]:
    """``feeds``' ``rows`` in runs (:class:`Runs`), the outputs joined back. Only what differs
    between two runs is done a run: the inputs were checked, the handle read and the lock taken
    once for all of them (a run of 32 rows of the example conv takes ~1.2 ms in the engine)."""
    ends = time.monotonic() + deadline[0] if deadline is not None else None

    def run(part: Mapping[str, np.ndarray], size: int, done: int) -> list[np.ndarray]:
        started = time.perf_counter()
        results = _run(model, part, deadline, ends, (done, rows))
        runs.record(size, time.perf_counter() - started)
        return results

    parts: list[list[np.ndarray]] = []
    done = 0
    model.aborted = False
    while done < rows:
        size = min(runs.next(done, rows), rows - done)
        if size < 1:
            raise InvalidParamError(f"Runs.next gave a run of {size} rows")
        if model.aborted:
            raise error_for(
                codes.ACL_ERROR_RT_FAILURE, f"execution aborted (Model.abort) after {done} of its {rows} rows"
            )
        try:
            results = run({name: a[done : done + size] for name, a in feeds.items()}, size, done)
        except AclError as exc:
            if exc.code in _ENDING or size == rows:
                raise
            whole = run(feeds, rows, done)  # the execution's own fault raises here
            runs.refuse(size)  # the size's, then: e.g. an .om whose dynamic batch sizes do not include it
            return whole
        if size == rows:
            return results
        if any(r.ndim == 0 or r.shape[0] != size for r in results):
            runs.refuse(None)
            return run(feeds, rows, done)
        parts.append(results)
        done += size
    return [np.concatenate(outputs) for outputs in zip(*parts, strict=True)]


def _shared_rows(feeds: Mapping[str, np.ndarray]) -> int:
    """The first axis every input shares (0: none does)."""
    lengths = {a.shape[0] if a.ndim else -1 for a in feeds.values()}
    return lengths.pop() if len(lengths) == 1 and -1 not in lengths else 0


def _matched(model: LoadedModel, inputs: Dataset) -> tuple[TensorSpec, ...]:
    if len(inputs.buffers) != len(model.inputs):
        names = ", ".join(s.name for s in model.inputs)
        raise error_for(
            codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH,
            f"model has {len(model.inputs)} inputs ({names}); the input dataset has {len(inputs.buffers)} buffers",
        )
    return model.inputs


def _input_shape(spec: TensorSpec, index: int, inputs: Dataset, size: int) -> tuple[tuple[int, ...], bool]:
    """The shape to run input ``index`` with, and whether it was set explicitly on the dataset."""
    if index in inputs.dynamic_dims:
        return inputs.dynamic_dims[index], True
    dims = list(spec.dims)
    explicit = False
    if inputs.dynamic_batch is not None and dims and dims[0] < 0:
        dims[0], explicit = inputs.dynamic_batch, True
    unknown = [i for i, d in enumerate(dims) if d < 0]
    if len(unknown) > 1:
        raise error_for(
            codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH,
            f"input {index} ({spec}) has several dynamic dims; set them with aclmdlSetInputDynamicDims",
        )
    if unknown:  # one dynamic dim: it follows from the byte size
        row = math.prod(d for d in dims if d >= 0) * spec.numpy_dtype.itemsize
        if row == 0 or size % row:
            raise error_for(
                codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH,
                f"input {index} ({spec}): {size} bytes is not a whole number of {row}-byte rows",
            )
        dims[unknown[0]] = size // row
    return tuple(dims), explicit


def _input_array(spec: TensorSpec, index: int, inputs: Dataset, memory: DeviceMemory) -> np.ndarray:
    buf = inputs.buffers[index]
    if not buf.ptr:
        raise InvalidParamError(f"input {index} ({spec.name}) has a null address")
    shape, explicit = _input_shape(spec, index, inputs, buf.size)
    need = math.prod(shape) * spec.numpy_dtype.itemsize
    # A buffer sized for a larger dynamic gear may hold more than the run reads, as in ACL.
    if buf.size < need or (buf.size != need and not explicit):
        raise error_for(
            codes.ACL_ERROR_MODEL_INPUT_NOT_MATCH,
            f"input {index} ({spec}) takes {need} bytes for shape {list(shape)}; its buffer holds {buf.size}",
        )
    return memory.array_at(buf.ptr, buf.size)[:need].view(spec.numpy_dtype).reshape(shape)


def _check_outputs(model: LoadedModel, outputs: Dataset) -> None:
    """Refuse before running what can be refused: a wrong count, or a static output too big."""
    if len(outputs.buffers) != len(model.outputs):
        raise error_for(
            codes.ACL_ERROR_MODEL_OUTPUT_NOT_MATCH,
            f"model has {len(model.outputs)} outputs; the output dataset has {len(outputs.buffers)} buffers",
        )
    for index, (spec, buf) in enumerate(zip(model.outputs, outputs.buffers)):
        if buf.ptr and spec.nbytes > buf.size:
            raise _too_small(index, spec, spec.nbytes, buf.size)


def _too_small(index: int, spec: TensorSpec, need: int, size: int) -> AclError:
    return error_for(
        codes.ACL_ERROR_MODEL_OUTPUT_NOT_MATCH,
        f"output {index} ({spec}) needs {need} bytes; its buffer holds {size}",
    )


def _write_outputs(model: LoadedModel, outputs: Dataset, results: list[np.ndarray], memory: DeviceMemory) -> None:
    # Every user buffer is checked before anything is written, so a failure writes nothing.
    targets = []
    for index, (spec, buf, result) in enumerate(zip(model.outputs, outputs.buffers, results)):
        if buf.ptr and result.nbytes > buf.size:
            raise _too_small(index, spec, result.nbytes, buf.size)
        targets.append(memory.array_at(buf.ptr, result.nbytes) if buf.ptr else None)
    for buf, target, result in zip(outputs.buffers, targets, results):
        if target is not None:
            target[:] = np.ascontiguousarray(result).reshape(-1).view(np.uint8)
        else:  # (null, 0): the runtime allocates; the caller now owns and frees this memory
            buf.ptr, buf.size = memory.adopt(model.device_id, result), result.nbytes
    outputs.shapes = [r.shape for r in results]
