"""Engines behind acl_core; :func:`create_backend` picks one from the runtime config."""

from dataclasses import dataclass

from acl_core.backends.base import Backend, BackendModel, RunTimedOut, TensorSpec
from acl_core.config import RuntimeConfig
from acl_core.errors import AclError

__all__ = ["Backend", "BackendModel", "DeviceRow", "RunTimedOut", "TensorSpec", "create_backend", "inventory"]


@dataclass(frozen=True)
class DeviceRow:
    """One line of `aclq devices`: a device a backend sees, or why the backend sees none."""

    backend: str
    provider: str
    device: int | None
    memory_bytes: int | None
    note: str = ""


def inventory(config: RuntimeConfig) -> list[DeviceRow]:
    """What every backend sees on this host, each provider of ONNX Runtime included."""
    from acl_core.backends import onnxruntime, pyacl

    rows = [DeviceRow("onnxruntime", p, i, m) for p, i, m in onnxruntime.inventory(config)]
    try:
        backend = pyacl.PyAclBackend(config)
        rows += [DeviceRow("pyacl", "pyACL", i, backend.device_memory(i)) for i in range(backend.device_count())]
    except AclError as exc:
        rows.append(DeviceRow("pyacl", "-", None, None, f"not available: {exc.message}"))
    return rows


def create_backend(config: RuntimeConfig) -> Backend:
    """The backend ``config`` names: ONNX Runtime on a provider, or the real pyACL."""
    # Imported here so that importing acl_core never loads an engine it was not asked for.
    if config.backend == "pyacl":
        from acl_core.backends.pyacl import PyAclBackend

        return PyAclBackend(config)
    from acl_core.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config)
