"""The one table mapping ACL data types to numpy and ONNX types."""

from enum import IntEnum
from typing import Final

import numpy as np


class DataType(IntEnum):
    """aclDataType."""

    ACL_DT_UNDEFINED = -1
    ACL_FLOAT = 0
    ACL_FLOAT16 = 1
    ACL_INT8 = 2
    ACL_INT32 = 3
    ACL_UINT8 = 4
    ACL_INT16 = 6
    ACL_UINT16 = 7
    ACL_UINT32 = 8
    ACL_INT64 = 9
    ACL_UINT64 = 10
    ACL_DOUBLE = 11
    ACL_BOOL = 12
    ACL_STRING = 13
    ACL_COMPLEX64 = 16
    ACL_COMPLEX128 = 17
    ACL_BF16 = 27


# (ACL type, numpy dtype, ONNX Runtime type string). Strings and bf16 have no fixed-size numpy
# dtype that ONNX Runtime feeds, so they are left out: such a model is refused at load.
_TABLE: Final = (
    (DataType.ACL_FLOAT, np.dtype(np.float32), "tensor(float)"),
    (DataType.ACL_FLOAT16, np.dtype(np.float16), "tensor(float16)"),
    (DataType.ACL_DOUBLE, np.dtype(np.float64), "tensor(double)"),
    (DataType.ACL_INT8, np.dtype(np.int8), "tensor(int8)"),
    (DataType.ACL_INT16, np.dtype(np.int16), "tensor(int16)"),
    (DataType.ACL_INT32, np.dtype(np.int32), "tensor(int32)"),
    (DataType.ACL_INT64, np.dtype(np.int64), "tensor(int64)"),
    (DataType.ACL_UINT8, np.dtype(np.uint8), "tensor(uint8)"),
    (DataType.ACL_UINT16, np.dtype(np.uint16), "tensor(uint16)"),
    (DataType.ACL_UINT32, np.dtype(np.uint32), "tensor(uint32)"),
    (DataType.ACL_UINT64, np.dtype(np.uint64), "tensor(uint64)"),
    (DataType.ACL_BOOL, np.dtype(np.bool_), "tensor(bool)"),
    (DataType.ACL_COMPLEX64, np.dtype(np.complex64), "tensor(complex64)"),
    (DataType.ACL_COMPLEX128, np.dtype(np.complex128), "tensor(complex128)"),
)

ACL_TO_NUMPY: Final[dict[DataType, np.dtype]] = {acl: npt for acl, npt, _ in _TABLE}
NUMPY_TO_ACL: Final[dict[np.dtype, DataType]] = {npt: acl for acl, npt, _ in _TABLE}
ONNX_TO_ACL: Final[dict[str, DataType]] = {onnx: acl for acl, _, onnx in _TABLE}
