"""``acl.util``: host pointers for numpy arrays and bytes, and views back, as in pyACL."""

import ctypes
import math
from collections.abc import Sequence

import numpy as np

from acl_core.memory import address

__all__ = ["numpy_to_ptr", "bytes_to_ptr", "ptr_to_numpy", "ptr_to_bytes"]

# pyACL names numpy types by their type number (e.g. 11 for float32).
_BY_TYPENUM: dict[int, np.dtype] = {
    np.dtype(t).num: np.dtype(t) for t in np.sctypeDict.values() if np.dtype(t).kind in "biufc"
}


def numpy_to_ptr(array: np.ndarray) -> int:
    """The address of a C-contiguous array's data; the caller keeps the array alive."""
    if not array.flags.c_contiguous:
        raise ValueError("numpy_to_ptr needs a C-contiguous array (np.ascontiguousarray)")
    return address(array)


def bytes_to_ptr(data: bytes) -> int:
    """The address of a bytes object's data; the caller keeps the object alive."""
    return address(np.frombuffer(data, dtype=np.uint8)) if data else 0


def ptr_to_numpy(ptr: int, shape: Sequence[int], np_type: int | np.dtype | type) -> np.ndarray:
    """A numpy view of memory at ``ptr`` (no copy); ``np_type`` a numpy type number or dtype."""
    dtype = _BY_TYPENUM[np_type] if isinstance(np_type, int) else np.dtype(np_type)
    count = math.prod(shape)
    raw = memoryview((ctypes.c_char * (count * dtype.itemsize)).from_address(ptr)).cast("B")
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


def ptr_to_bytes(ptr: int, size: int) -> bytes:
    """A copy of ``size`` bytes at ``ptr``."""
    return ctypes.string_at(ptr, size)
