"""The model repository (``<name>/<version>/model.onnx``) and the per-worker LRU model cache."""

import json
import logging
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from acl_core import AclError, Device, Model, codes
from acl_core.errors import error_for
from producer.wire import MODEL_NAME, model_name_problem

log = logging.getLogger(__name__)

#: a loaded model's memory, estimated from its file: weights once in the engine, once in its arena
MEMORY_PER_FILE_BYTE = 2
#: seconds a name resolves to the same version without looking at the repository again
#: (a resolution walks the directory: ~40 us a job); a new version is picked up after this
RESOLVE_TTL_S = 1.0
#: the longest max_queue_delay_ms a model may ask for: a wait for company, far below the
#: visibility timeout, so gathering never looks like a lost worker
MAX_QUEUE_DELAY_MS = 1000


@dataclass(frozen=True)
class ModelConfig:
    """``<name>/config.json``, all optional (as Triton's model configuration)."""

    warmup: bool = False  #: load (and run once) when the worker starts
    #: rows one execution may take from several jobs together (dynamic batching); 0 or 1: off
    max_batch_size: int = 0
    #: longest a job waits in the worker for others to batch with it
    max_queue_delay_ms: float = 0.0

    def __post_init__(self) -> None:
        if type(self.warmup) is not bool:
            raise ValueError(f"warmup must be true or false, got {self.warmup!r}")
        if type(self.max_batch_size) is not int or self.max_batch_size < 0:
            raise ValueError(f"max_batch_size must be an int >= 0, got {self.max_batch_size!r}")
        delay = self.max_queue_delay_ms
        if type(delay) not in (int, float) or not 0 <= delay <= MAX_QUEUE_DELAY_MS:
            raise ValueError(f"max_queue_delay_ms must be a number in [0, {MAX_QUEUE_DELAY_MS}], got {delay!r}")

    @property
    def batching(self) -> bool:
        return self.max_batch_size > 1


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: int
    path: Path
    config: ModelConfig


class ModelRepository:
    """Resolves a model name and optional version to a file inside the repository, never outside."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def resolve(self, name: str, version: int | None = None) -> ModelRef:
        if version is not None and (type(version) is not int or version < 1):
            raise error_for(codes.ACL_ERROR_INVALID_PARAM, f"model version {version!r} must be a positive int")
        versions = self.versions(name)
        if not versions:
            raise error_for(codes.ACL_ERROR_INVALID_FILE, f"no model {name!r} in the repository")
        model_dir = self.root / name
        chosen = versions[0] if version is None else version
        path = (model_dir / str(chosen) / "model.onnx").resolve()
        if not path.is_relative_to(self.root):  # a symlink leading out of the repository
            raise error_for(codes.ACL_ERROR_INVALID_PARAM, f"model {name!r} resolves outside the repository")
        if chosen not in versions or not path.is_file():
            raise error_for(
                codes.ACL_ERROR_INVALID_FILE, f"model {name!r} has no version {chosen}; it has {sorted(versions)}"
            )
        return ModelRef(name, chosen, path, self._config(model_dir))

    def versions(self, name: str) -> list[int]:
        """The versions of ``name`` in the repository, highest first."""
        problem = model_name_problem(name)
        if problem:
            raise error_for(codes.ACL_ERROR_INVALID_PARAM, problem)
        model_dir = self.root / name
        if not model_dir.is_dir():
            return []
        return sorted((int(p.name) for p in model_dir.glob("*") if p.name.isdigit()), reverse=True)

    def _config(self, model_dir: Path) -> ModelConfig:
        path = model_dir / "config.json"
        if not path.is_file():
            return ModelConfig()
        try:
            return ModelConfig(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise error_for(codes.ACL_ERROR_PARSE_FILE, f"{path.relative_to(self.root)}: {exc}") from None

    def largest_batch(self) -> int:
        """The largest ``max_batch_size`` among the models (1 when none batches): how many
        messages a worker may hold while it gathers a batch."""
        sizes = [1]
        for name in self.names():
            try:
                sizes.append(self.resolve(name).config.max_batch_size)
            except AclError as exc:  # a broken model fails its own jobs, not the worker's start
                log.warning("model %s: %s", name, exc)
        return max(sizes)

    def names(self) -> list[str]:
        """The models in the repository; none when it does not exist (yet)."""
        if not self.root.is_dir():
            log.warning("model repository %s does not exist", self.root)
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and MODEL_NAME.fullmatch(p.name))


class ModelCache:
    """Models loaded on one device, least recently used evicted past ``budget_bytes``."""

    def __init__(self, device: Device, repository: ModelRepository, budget_bytes: int) -> None:
        self._device = device
        self._repository = repository
        self._budget = budget_bytes
        self._loaded: OrderedDict[tuple[str, int], tuple[Model, int]] = OrderedDict()
        # What other threads (the heartbeat) may read: a copy this thread replaces whole at each
        # load and eviction, so nobody iterates _loaded while the job thread changes it.
        self._names: tuple[str, ...] = ()
        self._resolved: dict[tuple[str, int | None], tuple[ModelRef, float]] = {}
        # Versions whose file failed to load, with that file's mtime: not tried again until the
        # file changes. Read by the heartbeat thread as a whole tuple, like _names.
        self._broken: dict[tuple[str, int], float] = {}
        self._broken_names: tuple[str, ...] = ()

    def _resolve(self, name: str, version: int | None) -> ModelRef:
        now = time.monotonic()
        hit = self._resolved.get((name, version))  # the wire guarantees a str and an int or None
        if hit is not None and hit[1] > now:
            return hit[0]
        ref = self._repository.resolve(name, version)
        self._resolved[(name, version)] = (ref, now + RESOLVE_TTL_S)
        return ref

    def config(self, name: str) -> ModelConfig:
        """The config of the model a job names (its default version's directory holds it)."""
        return self._resolve(name, None).config

    def get(self, name: str, version: int | None = None) -> tuple[Model, ModelRef]:
        """The model, loaded. With no version, the highest that loads: a version whose file
        fails to load (a corrupt upload) is reported (:meth:`broken`) and the next one serves,
        as Triton does; an explicit version that fails is that job's error."""
        ref = self._resolve(name, version)
        try:
            return self._load(ref)
        except AclError as exc:
            if version is not None or (ref.name, ref.version) not in self._broken:
                raise
            for older in self._repository.versions(name):
                if older >= ref.version:
                    continue
                try:
                    return self._load(self._resolve(name, older))
                except AclError:
                    continue
            raise exc from None

    def _load(self, ref: ModelRef) -> tuple[Model, ModelRef]:
        key = (ref.name, ref.version)
        hit = self._loaded.get(key)
        if hit is not None:
            self._loaded.move_to_end(key)
            return hit[0], ref
        stat = ref.path.stat()
        if self._broken.get(key) == stat.st_mtime:
            raise error_for(codes.ACL_ERROR_INVALID_FILE, f"model {ref.name}:{ref.version} failed to load")
        cost = stat.st_size * MEMORY_PER_FILE_BYTE
        self._evict(self._budget - cost)
        try:
            model = self._device.load(ref.path)
        except AclError as exc:
            self._broken[key] = stat.st_mtime
            self._broken_names = _labels(self._broken)
            log.error("model %s:%d cannot be loaded: %s", ref.name, ref.version, exc)
            raise
        if self._broken.pop(key, None) is not None:  # a fixed file
            self._broken_names = _labels(self._broken)
        self._loaded[key] = (model, cost)
        self._names = _labels(self._loaded)
        log.info("loaded %s:%d on device %d (%s)", ref.name, ref.version, self._device.id, model.provider)
        return model, ref

    def broken(self) -> list[str]:
        """Versions whose file failed to load, as name:version; safe to call from any thread."""
        return list(self._broken_names)

    def _evict(self, keep_bytes: int) -> None:
        while self._loaded and self.used_bytes > max(keep_bytes, 0):
            (name, version), (model, _) = self._loaded.popitem(last=False)
            model.unload()
            self._names = _labels(self._loaded)
            log.info("evicted %s:%d from device %d", name, version, self._device.id)

    @property
    def used_bytes(self) -> int:
        return sum(cost for _, cost in self._loaded.values())

    def names(self) -> list[str]:
        """The loaded models as name:version; safe to call from any thread."""
        return list(self._names)

    def __len__(self) -> int:
        return len(self._loaded)


def _labels(models: Iterable[tuple[str, int]]) -> tuple[str, ...]:
    """(name, version) pairs as sorted name:version labels, for other threads to read whole."""
    return tuple(sorted(f"{name}:{version}" for name, version in models))
