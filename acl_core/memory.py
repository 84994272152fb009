"""Device memory: allocations addressed by real pointers, accounted per device.

On the ONNX Runtime backend a device's memory is host memory that this allocator hands out
and counts, so pointers are plain addresses that ``ctypes.memmove`` (``aclrtMemcpy``) can use,
as in pyACL. Every pointer the allocator hands out is checked on use: a pointer it did not hand
out, or a range running past its allocation, is refused with an ACL code instead of crashing.
"""

import bisect
import ctypes
import threading
from dataclasses import dataclass

import numpy as np

from acl_core import codes
from acl_core.constants import MemcpyKind
from acl_core.errors import InvalidParamError, error_for

#: alignment of every pointer ``malloc`` returns, bytes (ACL aligns device memory too)
ALIGNMENT = 64


_byte_at = ctypes.c_byte.from_buffer


def address(array: np.ndarray) -> int:
    """The address of an array's first byte.

    Through ctypes over the array's buffer (0.3 us here) where it is writable, contiguous and
    not empty, as the runtime's own allocations and the engine's outputs are; else NumPy's
    ``array.ctypes.data`` (1.2-2 us: it builds a helper object each call).
    """
    try:
        return ctypes.addressof(_byte_at(array))  # type: ignore[arg-type]  # numpy arrays export the buffer protocol
    except (TypeError, ValueError):  # read-only, not C-contiguous, or empty
        return int(array.ctypes.data)


@dataclass(frozen=True)
class MemoryStats:
    """One device's accounting: bytes in use now, the peak, and live allocations."""

    in_use: int
    peak: int
    live: int
    total: int

    @property
    def free(self) -> int:
        return self.total - self.in_use


@dataclass(frozen=True)
class _Allocation:
    ptr: int
    size: int
    device_id: int
    # The numpy array whose bytes this pointer addresses; holding it here is what keeps the
    # memory alive while the pointer is handed out (as ONNX Runtime's OrtValue holds its array).
    array: np.ndarray


class DeviceMemory:
    """Every live device allocation of the process, with per-device accounting."""

    def __init__(self, totals: dict[int, int]) -> None:
        self._lock = threading.Lock()
        self._totals = dict(totals)
        self._by_ptr: dict[int, _Allocation] = {}
        self._starts: list[int] = []  # sorted pointers, to find the allocation holding an address
        self._in_use = dict.fromkeys(totals, 0)
        self._peak = dict.fromkeys(totals, 0)

    def malloc(self, device_id: int, size: int) -> int:
        """Allocate ``size`` bytes on ``device_id``; the caller frees the pointer."""
        if size <= 0:
            raise InvalidParamError(f"aclrtMalloc size must be positive, got {size}")
        self._charge(device_id, size)
        try:
            raw = np.empty(size + ALIGNMENT, dtype=np.uint8)
        except MemoryError:
            self._refund(device_id, size)
            raise error_for(codes.ACL_ERROR_RT_MEMORY_ALLOCATION, f"the host could not back {size} bytes") from None
        start = address(raw)
        skip = -start % ALIGNMENT
        return self._register(device_id, raw[skip : skip + size], start + skip)

    def adopt(self, device_id: int, array: np.ndarray) -> int:
        """Hand out ``array``'s bytes as device memory without copying; ``free`` releases them.

        Used for outputs the runtime allocates during a run: the engine's output array becomes
        the device allocation, so the output is never copied on the device side.
        """
        flat = np.ascontiguousarray(array).reshape(-1).view(np.uint8)  # no copy for engine outputs
        if flat.nbytes == 0:  # a pointer must address something even for an empty tensor
            flat = np.empty(1, dtype=np.uint8)
        ptr = address(flat)
        with self._lock:  # once: this is on every execution's path, for each output
            if ptr in self._by_ptr:  # the engine returned memory that is already handed out (aliased outputs)
                flat = flat.copy()
                ptr = address(flat)
            self._charge_locked(device_id, flat.nbytes)
            self._register_locked(device_id, flat, ptr)
        return ptr

    def _charge(self, device_id: int, size: int) -> None:
        """Count ``size`` bytes as in use on the device, or refuse if they are not free."""
        with self._lock:
            self._charge_locked(device_id, size)

    def _charge_locked(self, device_id: int, size: int) -> None:
        free = self._totals[device_id] - self._in_use[device_id]
        if size > free:
            raise error_for(
                codes.ACL_ERROR_RT_MEMORY_ALLOCATION,
                f"device {device_id} has {free} bytes free, {size} requested",
            )
        self._in_use[device_id] += size
        self._peak[device_id] = max(self._peak[device_id], self._in_use[device_id])

    def _refund(self, device_id: int, size: int) -> None:
        with self._lock:
            self._in_use[device_id] -= size

    def _register(self, device_id: int, array: np.ndarray, ptr: int) -> int:
        """Hand out ``array`` (already charged), whose address is ``ptr``, as a device pointer."""
        with self._lock:
            self._register_locked(device_id, array, ptr)
        return ptr

    def _register_locked(self, device_id: int, array: np.ndarray, ptr: int) -> None:
        self._by_ptr[ptr] = _Allocation(ptr, array.nbytes, device_id, array)
        bisect.insort(self._starts, ptr)

    def free(self, ptr: int) -> np.ndarray:
        """Release an allocation and return the array that held its bytes.

        An unknown or already freed pointer is refused. The returned array stays valid: the
        Pythonic API hands runtime-allocated outputs to the caller this way, without a copy.
        """
        with self._lock:
            alloc = self._by_ptr.pop(ptr, None)
            if alloc is None:
                raise InvalidParamError(f"aclrtFree: {ptr:#x} is not a live device allocation")
            del self._starts[bisect.bisect_left(self._starts, ptr)]
            self._in_use[alloc.device_id] -= alloc.size
        return alloc.array

    def array_at(self, ptr: int, size: int) -> np.ndarray:
        """The uint8 view of device bytes ``[ptr, ptr + size)``, which must lie in one allocation."""
        with self._lock:
            alloc = self._by_ptr.get(ptr)
            if alloc is None:
                index = bisect.bisect_right(self._starts, ptr) - 1
                alloc = self._by_ptr[self._starts[index]] if index >= 0 else None
        if alloc is None or not alloc.ptr <= ptr < alloc.ptr + max(alloc.size, 1):
            raise InvalidParamError(f"{ptr:#x} is not device memory from aclrtMalloc")
        offset = ptr - alloc.ptr
        if size < 0 or offset + size > alloc.size:
            raise InvalidParamError(f"{size} bytes at {ptr:#x} run past its allocation of {alloc.size} bytes")
        return alloc.array[offset : offset + size]

    def memcpy(self, dst: int, dst_max: int, src: int, count: int, kind: int) -> None:
        """aclrtMemcpy: device pointers are checked against their allocations."""
        if kind not in MemcpyKind.__members__.values():
            raise InvalidParamError(f"memcpy kind {kind} is not an aclrtMemcpyKind (0..3)")
        if not dst or not src:
            raise InvalidParamError("memcpy with a null pointer")
        if count < 0 or count > dst_max:
            raise InvalidParamError(f"memcpy count {count} exceeds destMax {dst_max}")
        if kind in (MemcpyKind.ACL_MEMCPY_HOST_TO_DEVICE, MemcpyKind.ACL_MEMCPY_DEVICE_TO_DEVICE):
            self.array_at(dst, count)
        if kind in (MemcpyKind.ACL_MEMCPY_DEVICE_TO_HOST, MemcpyKind.ACL_MEMCPY_DEVICE_TO_DEVICE):
            self.array_at(src, count)
        ctypes.memmove(dst, src, count)

    def stats(self, device_id: int) -> MemoryStats:
        with self._lock:
            live = sum(1 for a in self._by_ptr.values() if a.device_id == device_id)
            return MemoryStats(self._in_use[device_id], self._peak[device_id], live, self._totals[device_id])

    def release_all(self) -> None:
        """Drop every allocation (aclFinalize)."""
        with self._lock:
            self._by_ptr.clear()
            self._starts.clear()
            self._in_use = dict.fromkeys(self._totals, 0)
