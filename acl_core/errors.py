"""The exceptions of acl_core's Pythonic API; the flat API returns their codes instead.

Categories follow ACL's own numbering of codes::

    AclError                      .code, .name (ACL's), .message
    ├── CallerError               1xxxxx: caller or environment (bad argument, file, model id)
    │   └── InvalidParamError     100000 ACL_ERROR_INVALID_PARAM
    ├── ResourceError             2xxxxx: memory, devices, handles
    ├── ServiceStateError         3xxxxx
    └── DeviceError               5xxxxx: internal, runtime or device failures
        ├── StreamSyncTimeout     507046 ACL_ERROR_RT_STREAM_SYNC_TIMEOUT
        └── EventSyncTimeout      507047 ACL_ERROR_RT_EVENT_SYNC_TIMEOUT

:func:`error_for` is the one place that maps a code to its class.
"""

from acl_core import codes


class AclError(Exception):
    """An ACL call failed with ``code``; ``str()`` leads with ``[code NAME]``."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        self.name = codes.name_of(code)
        self.message = message
        super().__init__(f"[{code} {self.name}] {message}")

    def __reduce__(self) -> tuple[object, ...]:
        # Rebuild through error_for so the class matches the code after pickling across processes.
        return (error_for, (self.code, self.message))


class _Leaf(AclError):
    """An error class with one code of its own, raised as ``Leaf(message)``."""

    CODE: int

    def __init__(self, message: str) -> None:
        super().__init__(self.CODE, message)


class CallerError(AclError):
    """1xxxxx: the caller or the environment is at fault."""


class InvalidParamError(_Leaf, CallerError):
    """100000: an argument is out of range, null, or of the wrong kind."""

    CODE = codes.ACL_ERROR_INVALID_PARAM


class ResourceError(AclError):
    """2xxxxx: memory, device or handle resources."""


class ServiceStateError(AclError):
    """3xxxxx: the service is in a state that refuses the call."""


class DeviceError(AclError):
    """5xxxxx: internal, runtime or device failures (500000 when nothing more is known)."""


class StreamSyncTimeout(_Leaf, DeviceError):
    """507046: the execution outlived ACL_MDL_STREAM_SYNC_TIMEOUT and was terminated."""

    CODE = codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT


class EventSyncTimeout(_Leaf, DeviceError):
    """507047: the execution outlived ACL_MDL_EVENT_SYNC_TIMEOUT and was terminated."""

    CODE = codes.ACL_ERROR_RT_EVENT_SYNC_TIMEOUT


_LEAVES: dict[int, type[_Leaf]] = {leaf.CODE: leaf for leaf in (InvalidParamError, StreamSyncTimeout, EventSyncTimeout)}
_CATEGORIES: dict[int, type[AclError]] = {
    1: CallerError,
    2: ResourceError,
    3: ServiceStateError,
    5: DeviceError,
}


def error_for(code: int, message: str) -> AclError:
    """The exception for ``code``: its leaf class, else its category by leading digit."""
    leaf = _LEAVES.get(code)
    if leaf is not None:
        return leaf(message)
    return _CATEGORIES.get(code // 100000, DeviceError)(code, message)
