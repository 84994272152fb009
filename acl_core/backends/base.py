"""The backend interface: what acl_core needs from an engine that runs models on a device.

A backend loads model bytes onto a device and runs them on host arrays. Everything ACL-shaped
(handles, datasets, exec-config options, error codes, memory accounting) stays above it, so a
backend is small: see :class:`Backend` and :class:`BackendModel`.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from acl_core.dtypes import ACL_TO_NUMPY, DataType


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as the description reports it; -1 marks a dynamic dim."""

    name: str
    dtype: DataType
    dims: tuple[int, ...]

    @property
    def numpy_dtype(self) -> np.dtype:
        return ACL_TO_NUMPY[self.dtype]

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.dims)

    @property
    def nbytes(self) -> int:
        """Bytes of one tensor, or 0 when a dim is dynamic (as aclmdlGetInputSizeByIndex)."""
        if self.is_dynamic:
            return 0
        return math.prod(self.dims) * self.numpy_dtype.itemsize

    def __str__(self) -> str:
        dims = ", ".join("?" if d < 0 else str(d) for d in self.dims)
        return f"{self.name}: {self.numpy_dtype.name}[{dims}]"


class RunTimedOut(Exception):
    """Raised by :meth:`BackendModel.run` when its timeout fired and the run was terminated."""


class RunAborted(Exception):
    """Raised by :meth:`BackendModel.run` when :meth:`BackendModel.abort` terminated the run."""


class BackendModel(Protocol):
    """A model loaded on one device."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: the engine's name for what runs it, e.g. "CPUExecutionProvider"
    provider: str

    def run(self, feeds: Mapping[str, np.ndarray], timeout_s: float | None) -> list[np.ndarray]:
        """Run once; terminate and raise :class:`RunTimedOut` after ``timeout_s`` if given.

        Raises AclError for any other failure. The model stays usable after either.
        """
        ...

    def abort(self) -> None:
        """Terminate the run in progress, if any, as its timeout would (it raises RunAborted);
        callable from any thread. A backend that cannot stop a run lets it finish."""
        ...


class Backend(Protocol):
    """An engine and the devices it drives."""

    #: short name reported to users, e.g. "onnxruntime"
    name: str

    def device_count(self) -> int: ...

    def device_memory(self, device_id: int) -> int:
        """Total bytes of device memory acl_core may hand out on ``device_id``."""
        ...

    def load(self, model: bytes | Path, device_id: int) -> BackendModel:
        """Load serialized model bytes, or the model file acl_core found readable and not empty;
        raise AclError (100013 for what is not a model)."""
        ...
