"""aclDataBuffer and aclmdlDataset: what a model execution reads from and writes to."""

from acl_core.errors import InvalidParamError


class DataBuffer:
    """An address and a size (aclDataBuffer); (0, 0) asks the runtime to allocate an output."""

    __slots__ = ("ptr", "size")

    def __init__(self, ptr: int, size: int) -> None:
        if ptr < 0 or size < 0 or (size and not ptr):
            raise InvalidParamError(f"data buffer ({ptr:#x}, {size}) is not an address and size")
        self.ptr = ptr
        self.size = size

    def update(self, ptr: int, size: int) -> None:
        """aclUpdateDataBuffer."""
        if ptr < 0 or size < 0 or (size and not ptr):
            raise InvalidParamError(f"data buffer ({ptr:#x}, {size}) is not an address and size")
        self.ptr, self.size = ptr, size


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
