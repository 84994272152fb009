"""The process's ACL runtime: init/finalize, devices, contexts, streams and memory.

ACL keeps this state per process and the current context per thread; so does :data:`RUNTIME`.
"""

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from acl_core import codes
from acl_core.backends import Backend, create_backend
from acl_core.config import RuntimeConfig
from acl_core.constants import MallocPolicy, MemAttr
from acl_core.errors import InvalidParamError, error_for
from acl_core.memory import DeviceMemory, MemoryStats
from acl_core.model import LoadedModel, ModelRegistry

_T = TypeVar("_T")


@dataclass(eq=False)
class Context:
    """An aclrtContext: binds a thread's calls to a device."""

    device_id: int
    streams: set["Stream"] = field(default_factory=set)


@dataclass(eq=False)
class Stream:
    """An aclrtStream. Executions here finish before the call returns, so it only orders."""

    context: Context


class Runtime:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._local = threading.local()
        self._initialized = False
        self._finalized = False
        self._backend: Backend | None = None
        self._memory: DeviceMemory | None = None
        self._models: ModelRegistry | None = None
        self._contexts: set[Context] = set()
        self._default_contexts: dict[int, Context] = {}

    # -- init / finalize -------------------------------------------------------------------
    def init(self, config_path: str | None = None) -> None:
        """aclInit; ``config_path`` names an optional JSON config file, as in ACL."""
        with self._lock:
            if self._initialized:
                raise error_for(codes.ACL_ERROR_REPEAT_INITIALIZE, "aclInit was already called")
            if config_path:
                _check_config_file(config_path)
            backend = create_backend(RuntimeConfig.from_env())
            totals = {d: backend.device_memory(d) for d in range(backend.device_count())}
            self._backend, self._memory, self._models = backend, DeviceMemory(totals), ModelRegistry(backend)
            self._initialized, self._finalized = True, False

    def ensure_initialized(self) -> None:
        """Initialise unless already done (the Pythonic API's entry)."""
        with self._lock:
            if not self._initialized:
                self.init()

    def finalize(self) -> None:
        """aclFinalize: unload every model, free all device memory, drop all contexts."""
        with self._lock:
            if not self._initialized:
                if self._finalized:
                    raise error_for(codes.ACL_ERROR_REPEAT_FINALIZE, "aclFinalize was already called")
                raise error_for(codes.ACL_ERROR_UNINITIALIZE, "aclInit has not been called")
            self.models.clear()
            self.memory.release_all()
            self._contexts.clear()
            self._default_contexts.clear()
            self._initialized, self._finalized = False, True
        self._local.__dict__.clear()

    @property
    def backend(self) -> Backend:
        return self._ready(self._backend)

    @property
    def memory(self) -> DeviceMemory:
        return self._ready(self._memory)

    @property
    def models(self) -> ModelRegistry:
        return self._ready(self._models)

    def _ready(self, part: _T | None) -> _T:
        if part is None or not self._initialized:
            raise error_for(codes.ACL_ERROR_UNINITIALIZE, "aclInit has not been called")
        return part

    # -- devices and contexts --------------------------------------------------------------
    def device_count(self) -> int:
        return self.backend.device_count()

    def _check_device(self, device_id: object) -> int:
        count = self.device_count()
        if type(device_id) is not int or not 0 <= device_id < count:
            raise error_for(
                codes.ACL_ERROR_RT_INVALID_DEVICEID,
                f"device {device_id!r} does not exist; this runtime has devices 0..{count - 1}",
            )
        return device_id

    def set_device(self, device_id: int) -> Context:
        """aclrtSetDevice: make the device's default context current on this thread."""
        device_id = self._check_device(device_id)
        with self._lock:
            context = self._default_contexts.get(device_id)
            if context is None:
                context = self._default_contexts[device_id] = Context(device_id)
                self._contexts.add(context)
        self._local.context = context
        return context

    def reset_device(self, device_id: int) -> None:
        """aclrtResetDevice: release the device's default context and its streams."""
        device_id = self._check_device(device_id)
        with self._lock:
            context = self._default_contexts.pop(device_id, None)
            if context is not None:
                self._contexts.discard(context)
        if getattr(self._local, "context", None) is context:
            self._local.context = None

    def create_context(self, device_id: int) -> Context:
        """aclrtCreateContext: a new context on the device, made current on this thread."""
        context = Context(self._check_device(device_id))
        with self._lock:
            self._contexts.add(context)
        self._local.context = context
        return context

    def destroy_context(self, context: Context) -> None:
        with self._lock:
            self._live_context(context)
            self._contexts.discard(context)
        if getattr(self._local, "context", None) is context:
            self._local.context = None

    def set_current_context(self, context: Context) -> None:
        with self._lock:
            self._live_context(context)
        self._local.context = context

    def current_context(self) -> Context:
        self.backend  # noqa: B018 - raises UNINITIALIZE first, as ACL does
        context: Context | None = getattr(self._local, "context", None)
        if context is None or context not in self._contexts:
            raise error_for(
                codes.ACL_ERROR_RT_CONTEXT_NULL,
                "this thread has no current context: call aclrtSetDevice or aclrtSetCurrentContext",
            )
        return context

    def _live_context(self, context: object) -> Context:
        if not isinstance(context, Context) or context not in self._contexts:
            raise InvalidParamError(f"{context!r} is not a live context")
        return context

    # -- streams ---------------------------------------------------------------------------
    def create_stream(self) -> Stream:
        context = self.current_context()
        stream = Stream(context)
        with self._lock:
            context.streams.add(stream)
        return stream

    def check_stream(self, stream: object) -> Stream:
        if (
            not isinstance(stream, Stream)
            or stream.context not in self._contexts
            or stream not in stream.context.streams
        ):
            raise InvalidParamError(f"{stream!r} is not a live stream")
        return stream

    def destroy_stream(self, stream: Stream) -> None:
        with self._lock:
            self.check_stream(stream).context.streams.discard(stream)

    # -- memory ----------------------------------------------------------------------------
    def malloc(self, size: int, policy: int) -> int:
        """aclrtMalloc on the current context's device."""
        if policy not in MallocPolicy.__members__.values():
            raise InvalidParamError(f"malloc policy {policy!r} is not an aclrtMemMallocPolicy (0..2)")
        if type(size) is not int:
            raise InvalidParamError(f"malloc size {size!r} is not an int")
        return self.memory.malloc(self.current_context().device_id, size)

    def mem_info(self, attr: int) -> MemoryStats:
        """aclrtGetMemInfo for the current device; every attr reports the one memory pool."""
        if attr not in MemAttr.__members__.values():
            raise InvalidParamError(f"memory attr {attr!r} is not an aclrtMemAttr (0..9)")
        return self.memory.stats(self.current_context().device_id)

    # -- models ----------------------------------------------------------------------------
    def load_model(self, model: bytes | Path) -> LoadedModel:
        """aclmdlLoadFromMem (bytes) or aclmdlLoadFromFile (a :func:`model_file`) onto the current
        context's device."""
        return self.models.load(model, self.current_context().device_id)


def _check_config_file(path: str) -> None:
    try:
        with open(path, "rb") as f:
            json.load(f)
    except OSError as exc:
        raise error_for(codes.ACL_ERROR_INVALID_FILE, f"aclInit config {path!r}: {exc.strerror}") from None
    except ValueError as exc:
        raise error_for(codes.ACL_ERROR_PARSE_FILE, f"aclInit config {path!r} is not JSON: {exc}") from None


#: the process's one runtime, as ACL has one per process
RUNTIME = Runtime()
