"""acl_core's settings, read from ``ACLQ_*`` environment variables in this one place."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from acl_core.errors import InvalidParamError

#: engines acl_core can run on
BACKENDS = ("onnxruntime", "pyacl")
#: ONNX Runtime execution providers a user may ask for, by short name
PROVIDERS = ("auto", "cpu", "cuda", "cann")


@dataclass(frozen=True)
class RuntimeConfig:
    """How the runtime maps ACL devices onto the engine.

    Attributes:
        backend: ``onnxruntime`` (ONNX models), or ``pyacl`` (.om models through the CANN
            toolkit's own ``acl`` module).
        provider: for onnxruntime, ``auto`` (CANN if installed, else CUDA, else CPU), or
            ``cpu``, ``cuda``, ``cann``; asking for one that is not installed is an error, never
            a silent fallback.
        device_count: devices exposed. None: on the CPU one, on an accelerator every visible
            one (``CUDA_VISIBLE_DEVICES`` / ``ASCEND_RT_VISIBLE_DEVICES`` honoured). CPU
            devices are virtual and split the cores between them.
        device_memory_mb: device memory acl_core hands out per device; None = the device's own
            memory where known, else physical memory divided between the devices.
        graph_cache_dir: where ONNX Runtime's optimized graphs of CPU models are kept between
            loads (a later load skips the optimization); None: not kept.
    """

    backend: str = "onnxruntime"
    provider: str = "auto"
    device_count: int | None = None
    device_memory_mb: int | None = None
    graph_cache_dir: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "RuntimeConfig":
        """``ACLQ_BACKEND``, ``ACLQ_PROVIDER``, ``ACLQ_DEVICE_COUNT``, ``ACLQ_DEVICE_MEMORY_MB``,
        ``ACLQ_GRAPH_CACHE_DIR`` (unset: the user's cache directory; empty: none)."""
        backend = env.get("ACLQ_BACKEND", cls.backend).lower()
        if backend not in BACKENDS:
            raise InvalidParamError(f"ACLQ_BACKEND={backend!r} is not one of {BACKENDS}")
        provider = env.get("ACLQ_PROVIDER", cls.provider).lower()
        if provider not in PROVIDERS:
            raise InvalidParamError(f"ACLQ_PROVIDER={provider!r} is not one of {PROVIDERS}")
        count = _positive_int(env, "ACLQ_DEVICE_COUNT")
        memory = _positive_int(env, "ACLQ_DEVICE_MEMORY_MB")
        graphs = env.get("ACLQ_GRAPH_CACHE_DIR", _default_graph_cache_dir(env)) or None
        return cls(backend, provider, count, memory, graphs)


def _default_graph_cache_dir(env: Mapping[str, str]) -> str:
    """``$XDG_CACHE_HOME/aclq/graphs``, the XDG default being ``~/.cache``."""
    return os.path.join(env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "aclq", "graphs")


def _positive_int(env: Mapping[str, str], key: str) -> int | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidParamError(f"{key}={raw!r} must be a positive integer")
    return value
