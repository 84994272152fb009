"""pyACL passes handles as ints; this table maps each live one to its object."""

from typing import TypeVar

from acl_core.errors import InvalidParamError

_T = TypeVar("_T")
_live: dict[int, object] = {}


def new(obj: object) -> int:
    """A handle for ``obj``, kept alive until :func:`drop`. Handles are never 0 (ACL's null)."""
    handle = id(obj)
    _live[handle] = obj
    return handle


def get(handle: object, kind: type[_T]) -> _T:
    obj = _live.get(handle) if type(handle) is int else None
    if not isinstance(obj, kind):
        what = "null" if handle == 0 else f"{handle!r}"
        raise InvalidParamError(f"{what} is not a live {kind.__name__} handle")
    return obj


def drop(handle: object, kind: type[_T]) -> _T:
    obj = get(handle, kind)
    del _live[handle]  # type: ignore[arg-type]
    return obj


def handle_of(obj: object) -> int:
    """The handle already given to ``obj`` (an object reached through another handle)."""
    return id(obj) if id(obj) in _live else 0


def clear() -> None:
    _live.clear()
