"""The flat, pyACL-shaped API: ``from acl_core import acl`` and port pyACL code unchanged.

Every call returns an ACL code (or its values followed by the code) and never raises for an
API misuse; ``acl.get_recent_err_msg()`` says what went wrong last on this thread.
"""

from acl_core.acl import _handles, mdl, rt, util
from acl_core.acl._convention import recent_error, returns_code, returns_value
from acl_core.dataset import DataBuffer
from acl_core.runtime import RUNTIME

__all__ = [
    # runtime lifetime
    "init",
    "finalize",
    "get_recent_err_msg",
    # data buffers
    "create_data_buffer",
    "destroy_data_buffer",
    "update_data_buffer",
    "get_data_buffer_addr",
    "get_data_buffer_size",
    "get_data_buffer_size_v2",
    # namespaces
    "rt",
    "mdl",
    "util",
]


@returns_code
def init(config_path: str | None = None) -> None:
    """aclInit."""
    RUNTIME.init(config_path)


@returns_code
def finalize() -> None:
    """aclFinalize: every handle, model and allocation is released."""
    RUNTIME.finalize()
    _handles.clear()


def get_recent_err_msg() -> str:
    """aclGetRecentErrMsg: the message of this thread's last failed call."""
    return recent_error()


@returns_value(0)
def create_data_buffer(data: int, size: int) -> int:
    """aclCreateDataBuffer; (0, 0) asks the runtime to allocate an output."""
    return _handles.new(DataBuffer(data, size))


@returns_code
def destroy_data_buffer(buffer: int) -> None:
    """aclDestroyDataBuffer; the memory it points at is the caller's to free."""
    _handles.drop(buffer, DataBuffer)


@returns_code
def update_data_buffer(buffer: int, data: int, size: int) -> None:
    """aclUpdateDataBuffer."""
    _handles.get(buffer, DataBuffer).update(data, size)


@returns_value(0)
def get_data_buffer_addr(buffer: int) -> int:
    """aclGetDataBufferAddr."""
    return _handles.get(buffer, DataBuffer).ptr


@returns_value(0)
def get_data_buffer_size_v2(buffer: int) -> int:
    """aclGetDataBufferSizeV2."""
    return _handles.get(buffer, DataBuffer).size


get_data_buffer_size = get_data_buffer_size_v2
