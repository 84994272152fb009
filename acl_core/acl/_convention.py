"""pyACL's calling convention, in one place: exceptions become return codes here and only here.

Flat functions return an int code, or their value(s) followed by the code; an API misuse never
raises. The message of the last failure on this thread is kept for ``acl.get_recent_err_msg``.
"""

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from acl_core import codes
from acl_core.errors import AclError, InvalidParamError

log = logging.getLogger("acl_core.acl")
_P = ParamSpec("_P")
_R = TypeVar("_R")
_local = threading.local()
# Python's own complaints about argument types are API misuses too (ACL_ERROR_INVALID_PARAM).
_MISUSE = (TypeError, ValueError, OverflowError, AttributeError)


def recent_error() -> str:
    return str(getattr(_local, "message", ""))


def _failed(exc: Exception) -> int:
    error = exc if isinstance(exc, AclError) else InvalidParamError(f"{type(exc).__name__}: {exc}")
    _local.message = str(error)
    log.debug("%s", error)
    return error.code


def returns_code(fn: Callable[_P, object]) -> Callable[_P, int]:
    """``fn`` returns nothing useful: the flat call returns ACL_SUCCESS or the error code."""

    @functools.wraps(fn)
    def flat(*args: _P.args, **kwargs: _P.kwargs) -> int:
        try:
            fn(*args, **kwargs)
        except (AclError, *_MISUSE) as exc:
            return _failed(exc)
        return codes.ACL_SUCCESS

    return flat


def returns_value_and_code(failed: Any) -> Callable[[Callable[_P, Any]], Callable[_P, tuple[Any, ...]]]:
    """The flat call returns ``(value, ret)``, or ``(*values, ret)`` when ``failed`` is a tuple."""

    def wrap(fn: Callable[_P, Any]) -> Callable[_P, tuple[Any, ...]]:
        spread = isinstance(failed, tuple)

        @functools.wraps(fn)
        def flat(*args: _P.args, **kwargs: _P.kwargs) -> tuple[Any, ...]:
            try:
                value = fn(*args, **kwargs)
                code = codes.ACL_SUCCESS
            except (AclError, *_MISUSE) as exc:
                value, code = failed, _failed(exc)
            return (*value, code) if spread else (value, code)

        return flat

    return wrap


def returns_value(failed: _R) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """The flat call returns only a value (pyACL's getters), ``failed`` on error."""

    def wrap(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(fn)
        def flat(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return fn(*args, **kwargs)
            except (AclError, *_MISUSE) as exc:
                _failed(exc)
                return failed

        return flat

    return wrap
