"""The exec-config handle (aclmdlExecConfigHandle) and its option validation."""

from acl_core import codes
from acl_core.constants import INT32_MAX, ExecConfigAttr
from acl_core.errors import InvalidParamError

_TIMEOUTS = (ExecConfigAttr.ACL_MDL_STREAM_SYNC_TIMEOUT, ExecConfigAttr.ACL_MDL_EVENT_SYNC_TIMEOUT)
_TIMEOUT_CODES = {
    ExecConfigAttr.ACL_MDL_STREAM_SYNC_TIMEOUT: codes.ACL_ERROR_RT_STREAM_SYNC_TIMEOUT,
    ExecConfigAttr.ACL_MDL_EVENT_SYNC_TIMEOUT: codes.ACL_ERROR_RT_EVENT_SYNC_TIMEOUT,
}
_SUPPORTED = "supported: ACL_MDL_STREAM_SYNC_TIMEOUT (0) and ACL_MDL_EVENT_SYNC_TIMEOUT (1)"


class ExecConfigHandle:
    """Per-execution options; records only values that passed validation."""

    __slots__ = ("timeouts_ms", "_deadline")

    def __init__(self) -> None:
        self.timeouts_ms: dict[ExecConfigAttr, int] = {}
        self._deadline: tuple[float, int] | None = None  # deadline()'s, kept: read every execution

    def set(self, attr: object, value: object) -> None:
        """aclmdlSetExecConfigOpt: validate like ACL, and raise InvalidParamError otherwise."""
        if type(attr) is not int and not isinstance(attr, ExecConfigAttr):
            raise InvalidParamError(f"exec-config attr {attr!r} is not an aclmdlExecConfigAttr; {_SUPPORTED}")
        if attr not in ExecConfigAttr.__members__.values():
            raise InvalidParamError(f"exec-config attr {attr} is not an aclmdlExecConfigAttr; {_SUPPORTED}")
        attr = ExecConfigAttr(attr)
        if attr not in _TIMEOUTS:
            raise InvalidParamError(f"{attr.name} cannot be honoured by this backend; {_SUPPORTED}")
        if type(value) is not int or not -1 <= value <= INT32_MAX:
            raise InvalidParamError(f"{attr.name} takes an int32 number of ms in -1..{INT32_MAX}, got {value!r}")
        self.timeouts_ms[attr] = value
        armed = [(ms, attr) for attr, ms in self.timeouts_ms.items() if ms > 0]
        if armed:
            ms, tightest = min(armed)
            self._deadline = ms / 1000, _TIMEOUT_CODES[tightest]
        else:
            self._deadline = None

    def deadline(self) -> tuple[float, int] | None:
        """The tightest timeout set, in seconds, with the code it fails with; None = none set.

        -1 (ACL's default) and 0 both mean no timeout: a zero budget could never be met.
        """
        return self._deadline
