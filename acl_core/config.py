"""acl_core's settings, read from ``ACLQ_*`` environment variables in this one place."""

import os
from collections.abc import Mapping
from dataclasses import dataclass

from acl_core.errors import InvalidParamError

#: execution providers a user may ask for, by short name
PROVIDERS = ("auto", "cpu", "cuda", "cann")


@dataclass(frozen=True)
class RuntimeConfig:
    """How the runtime maps ACL devices onto the engine.

    Attributes:
        provider: ``auto`` (CANN if installed, else CUDA, else CPU), or ``cpu``, ``cuda``,
            ``cann``; asking for one that is not installed is an error, never a silent fallback.
        device_count: devices the runtime exposes. On the CPU these are virtual devices that
            split the machine's cores between them (intra-op threads = cores // devices).
        device_memory_mb: device memory acl_core hands out per device; None = physical memory
            divided between the devices.
    """

    provider: str = "auto"
    device_count: int = 1
    device_memory_mb: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "RuntimeConfig":
        """``ACLQ_PROVIDER``, ``ACLQ_DEVICE_COUNT``, ``ACLQ_DEVICE_MEMORY_MB``."""
        provider = env.get("ACLQ_PROVIDER", cls.provider).lower()
        if provider not in PROVIDERS:
            raise InvalidParamError(f"ACLQ_PROVIDER={provider!r} is not one of {PROVIDERS}")
        count = _positive_int(env, "ACLQ_DEVICE_COUNT", None) or cls.device_count
        memory = _positive_int(env, "ACLQ_DEVICE_MEMORY_MB", None)
        return cls(provider, count, memory)


def _positive_int(env: Mapping[str, str], key: str, default: int | None) -> int | None:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise InvalidParamError(f"{key}={raw!r} must be a positive integer")
    return value
