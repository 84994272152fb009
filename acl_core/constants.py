"""ACL's enums, with ACL's exact names and values (acl_base.h, acl_rt.h, acl_mdl.h).

The data-type enum lives in :mod:`acl_core.dtypes`, beside its numpy and ONNX mappings.
"""

from enum import IntEnum
from typing import Final


class ExecConfigAttr(IntEnum):
    """aclmdlExecConfigAttr: what ``aclmdlSetExecConfigOpt`` can set on a handle."""

    ACL_MDL_STREAM_SYNC_TIMEOUT = 0  #: int32 ms, -1 = forever
    ACL_MDL_EVENT_SYNC_TIMEOUT = 1  #: int32 ms, -1 = forever
    ACL_MDL_WORK_ADDR_PTR = 2  #: user-managed work memory
    ACL_MDL_WORK_SIZET = 3  #: size of that work memory
    ACL_MDL_MPAIMID_SIZET = 4  #: reserved
    ACL_MDL_AICQOS_SIZET = 5  #: reserved
    ACL_MDL_AICOST_SIZET = 6  #: reserved
    ACL_MDL_MEC_TIMETHR_SIZET = 7  #: reserved


class MemcpyKind(IntEnum):
    """aclrtMemcpyKind."""

    ACL_MEMCPY_HOST_TO_HOST = 0
    ACL_MEMCPY_HOST_TO_DEVICE = 1
    ACL_MEMCPY_DEVICE_TO_HOST = 2
    ACL_MEMCPY_DEVICE_TO_DEVICE = 3


class MallocPolicy(IntEnum):
    """aclrtMemMallocPolicy."""

    ACL_MEM_MALLOC_HUGE_FIRST = 0
    ACL_MEM_MALLOC_HUGE_ONLY = 1
    ACL_MEM_MALLOC_NORMAL_ONLY = 2


class MemAttr(IntEnum):
    """aclrtMemAttr: which memory ``aclrtGetMemInfo`` reports on."""

    ACL_DDR_MEM = 0
    ACL_HBM_MEM = 1
    ACL_DDR_MEM_HUGE = 2
    ACL_DDR_MEM_NORMAL = 3
    ACL_HBM_MEM_HUGE = 4
    ACL_HBM_MEM_NORMAL = 5
    ACL_DDR_MEM_P2P_HUGE = 6
    ACL_DDR_MEM_P2P_NORMAL = 7
    ACL_HBM_MEM_P2P_HUGE = 8
    ACL_HBM_MEM_P2P_NORMAL = 9


class MemType(IntEnum):
    """aclMemType."""

    ACL_MEMTYPE_DEVICE = 0
    ACL_MEMTYPE_HOST = 1


class Format(IntEnum):
    """aclFormat."""

    ACL_FORMAT_UNDEFINED = -1
    ACL_FORMAT_NCHW = 0
    ACL_FORMAT_NHWC = 1
    ACL_FORMAT_ND = 2
    ACL_FORMAT_NC1HWC0 = 3
    ACL_FORMAT_FRACTAL_Z = 4
    ACL_FORMAT_NC1HWC0_C04 = 12
    ACL_FORMAT_HWCN = 16
    ACL_FORMAT_NDHWC = 27
    ACL_FORMAT_FRACTAL_NZ = 29
    ACL_FORMAT_NCDHW = 30
    ACL_FORMAT_NDC1HWC0 = 32
    ACL_FORMAT_FRACTAL_Z_3D = 33


#: ACL's null pointer / null handle
NULL: Final = 0
#: largest value an int32 exec-config timeout may take
INT32_MAX: Final = 2**31 - 1
