"""aclDataBuffer and aclmdlDataset: what a model execution reads from and writes to."""

import numpy as np

from acl_core.errors import InvalidParamError


class DataBuffer:
    """An address and a size (aclDataBuffer); (0, 0) asks the runtime to allocate an output.

    ``array`` is the opt-in zero-copy path of the Pythonic API: a host array the buffer reads
    from directly, held here so its memory outlives the execution.
    """

    __slots__ = ("ptr", "size", "array")

    def __init__(self, ptr: int, size: int, array: np.ndarray | None = None) -> None:
        if ptr < 0 or size < 0 or (size and not ptr):
            raise InvalidParamError(f"data buffer ({ptr:#x}, {size}) is not an address and size")
        self.ptr = ptr
        self.size = size
        self.array = array

    def update(self, ptr: int, size: int) -> None:
        """aclUpdateDataBuffer."""
        if ptr < 0 or size < 0 or (size and not ptr):
            raise InvalidParamError(f"data buffer ({ptr:#x}, {size}) is not an address and size")
        self.ptr, self.size, self.array = ptr, size, None


class Dataset:
    """An ordered list of data buffers (aclmdlDataset) and the dynamic shapes set on it."""

    __slots__ = ("buffers", "dynamic_batch", "dynamic_dims", "shapes")

    def __init__(self) -> None:
        self.buffers: list[DataBuffer] = []
        #: first-axis size for dynamic-batch inputs (aclmdlSetDynamicBatchSize)
        self.dynamic_batch: int | None = None
        #: full shapes of dynamic inputs by index (aclmdlSetInputDynamicDims)
        self.dynamic_dims: dict[int, tuple[int, ...]] = {}
        #: shapes of the tensors written to an output dataset by the last execution
        self.shapes: list[tuple[int, ...]] = []

    def buffer(self, index: int) -> DataBuffer:
        if not 0 <= index < len(self.buffers):
            raise InvalidParamError(f"dataset has {len(self.buffers)} buffers, no index {index}")
        return self.buffers[index]
