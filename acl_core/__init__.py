"""acl_core: the AscendCL model-execution API on a portable engine (ONNX Runtime).

Two faces over one implementation: the flat, pyACL-shaped ``acl`` module (codes, never raises
for a misuse) and the Pythonic :class:`Device` / :class:`Model` (raises :class:`AclError`).
"""

import os as _os

# ONNX Runtime's official builds collect usage telemetry on Linux too (1.29 and later): a device
# id and an event store under ~/.cache/Microsoft, uploaded to Microsoft's collector. Devices that
# run a fleet's inference do not report to a third party unless their operator says so
# (ORT_DISABLE_TELEMETRY=0). Set before any of acl_core imports ONNX Runtime.
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

from acl_core import acl, codes
from acl_core.api import Device, ExecConfig, Model
from acl_core.backends.base import TensorSpec
from acl_core.constants import ExecConfigAttr, Format, MallocPolicy, MemAttr, MemcpyKind, MemType
from acl_core.dtypes import DataType
from acl_core.errors import (
    AclError,
    CallerError,
    DeviceError,
    EventSyncTimeout,
    InvalidParamError,
    ResourceError,
    ServiceStateError,
    StreamSyncTimeout,
)
from acl_core.memory import MemoryStats

__all__ = [
    # the flat pyACL-shaped API and the code table
    "acl",
    "codes",
    # the Pythonic API
    "Device",
    "Model",
    "ExecConfig",
    "TensorSpec",
    "MemoryStats",
    # enums
    "DataType",
    "ExecConfigAttr",
    "Format",
    "MallocPolicy",
    "MemAttr",
    "MemcpyKind",
    "MemType",
    # errors
    "AclError",
    "CallerError",
    "InvalidParamError",
    "ResourceError",
    "ServiceStateError",
    "DeviceError",
    "StreamSyncTimeout",
    "EventSyncTimeout",
]
