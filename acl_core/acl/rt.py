"""``acl.rt``: devices, contexts, streams and device memory (aclrt*)."""

from acl_core.acl import _handles
from acl_core.acl._convention import returns_code, returns_value_and_code
from acl_core.runtime import RUNTIME, Context, Stream

__all__ = [
    # devices and contexts
    "set_device",
    "reset_device",
    "get_device_count",
    "get_device",
    "create_context",
    "destroy_context",
    "set_context",
    "get_context",
    # streams
    "create_stream",
    "destroy_stream",
    "synchronize_stream",
    "synchronize_stream_with_timeout",
    # memory
    "malloc",
    "free",
    "memcpy",
    "get_mem_info",
]


@returns_code
def set_device(device_id: int) -> None:
    RUNTIME.set_device(device_id)


@returns_code
def reset_device(device_id: int) -> None:
    RUNTIME.reset_device(device_id)


@returns_value_and_code(0)
def get_device_count() -> int:
    return RUNTIME.device_count()


@returns_value_and_code(-1)
def get_device() -> int:
    return RUNTIME.current_context().device_id


@returns_value_and_code(0)
def create_context(device_id: int) -> int:
    return _handles.new(RUNTIME.create_context(device_id))


@returns_code
def destroy_context(context: int) -> None:
    RUNTIME.destroy_context(_handles.drop(context, Context))


@returns_code
def set_context(context: int) -> None:
    RUNTIME.set_current_context(_handles.get(context, Context))


@returns_value_and_code(0)
def get_context() -> int:
    context = RUNTIME.current_context()
    # A device's default context (from set_device) gets a handle the first time it is asked for.
    return _handles.handle_of(context) or _handles.new(context)


@returns_value_and_code(0)
def create_stream() -> int:
    return _handles.new(RUNTIME.create_stream())


@returns_code
def destroy_stream(stream: int) -> None:
    RUNTIME.destroy_stream(_handles.get(stream, Stream))
    _handles.drop(stream, Stream)


@returns_code
def synchronize_stream(stream: int) -> None:
    """Executions finish before their call returns, so a live stream is always in sync."""
    if stream:
        RUNTIME.check_stream(_handles.get(stream, Stream))


@returns_code
def synchronize_stream_with_timeout(stream: int, timeout: int) -> None:
    if stream:
        RUNTIME.check_stream(_handles.get(stream, Stream))


@returns_value_and_code(0)
def malloc(size: int, policy: int) -> int:
    return RUNTIME.malloc(size, policy)


@returns_code
def free(ptr: int) -> None:
    RUNTIME.memory.free(ptr)


@returns_code
def memcpy(dst: int, dst_max: int, src: int, count: int, kind: int) -> None:
    RUNTIME.memory.memcpy(dst, dst_max, src, count, kind)


@returns_value_and_code((0, 0))
def get_mem_info(attr: int) -> tuple[int, int]:
    """(free, total, ret) in bytes for the current device."""
    stats = RUNTIME.mem_info(attr)
    return stats.free, stats.total
