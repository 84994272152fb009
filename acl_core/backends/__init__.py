"""Engines behind acl_core; :func:`create_backend` picks one from the runtime config."""

from acl_core.backends.base import Backend, BackendModel, RunTimedOut, TensorSpec
from acl_core.config import RuntimeConfig

__all__ = ["Backend", "BackendModel", "RunTimedOut", "TensorSpec", "create_backend"]


def create_backend(config: RuntimeConfig) -> Backend:
    """The backend for ``config``: ONNX Runtime on the provider it names."""
    # Imported here so that importing acl_core's constants never loads onnxruntime.
    from acl_core.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(config)
