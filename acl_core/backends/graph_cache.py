"""ONNX Runtime's optimized graphs, kept on disk so that a model loads without optimizing again.

Ascend users compile a model once (ATC, to .om) and load the result on every start; ONNX Runtime
instead optimizes the graph at each session's creation, and on the CPU the full level (its NCHWc
layout rewrite above all) is most of a large model's load: a ResNet-50 session takes 0.22-0.37 s
to create at that level, 0.07 s from its graph once optimized (ONNX Runtime alone, on the
machine of docs/performance.md), in every worker at every start. The first load writes the
optimized graph (ORT's ``optimized_model_filepath``, to a temporary name, then renamed into
place: workers loading the same model at once each write a whole file); later loads read it with
optimization off. Same kernels, same outputs, bit for bit.

ORT warns that a graph optimized at the full level fits only the machine it was optimized on,
so the key names the CPU (its model and instruction-set flags) and the ORT version besides the
model; only CPU-provider sessions are kept (accelerator providers compile parts of the graph
into nodes ORT cannot write out). A model loaded from a file is named by the file (path, size,
mtime and inode: Python's bytecode cache trusts size and mtime alone), one given as bytes by
their digest. Each load that uses a graph touches it; adding one removes those unused for
UNUSED_DAYS, so graphs of replaced model versions and removed files do not pile up.
"""

import contextlib
import functools
import hashlib
import logging
import os
import platform
import time
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)
#: a kept graph no load has used for this long is removed when another is added
UNUSED_DAYS = 30


@functools.cache
def _machine() -> str:
    """What an optimized graph depends on beyond the model: the CPU and ONNX Runtime."""
    cpu = platform.machine()  # (not platform.processor(), which runs `uname -p` in a subprocess)
    try:
        with open("/proc/cpuinfo") as info:
            # the processors' model and flags: a graph fitted to AVX-512 must not meet an AVX2 host
            cpu += "".join(line for line in info if line.startswith(("model name", "flags", "Features")))
    except OSError:
        pass
    return f"{ort.__version__}\0{cpu}"


def model_key(model: bytes | Path) -> str:
    """A name for this model on this machine, as a cached graph's file name."""
    digest = hashlib.sha256(_machine().encode())
    if isinstance(model, bytes):
        digest.update(model)
    else:
        stat = model.stat()
        digest.update(f"{model.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{stat.st_dev}\0{stat.st_ino}".encode())
    return digest.hexdigest()[:32]


class GraphCache:
    """Sessions whose optimized graph comes from ``root`` when there, and is put there when not."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def session(
        self, model: bytes | Path, options: ort.SessionOptions, providers: list[str | tuple[str, dict[str, object]]]
    ) -> ort.InferenceSession:
        """The session; ``options`` as the caller would create it uncached (full optimization)."""
        cached = self.root / f"{model_key(model)}.onnx"
        if cached.exists():
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            try:
                session = ort.InferenceSession(str(cached), options, providers=providers)
                os.utime(cached)  # used: kept past the next prune
                return session
            except Exception as exc:  # a truncated or foreign file: optimize again, and replace it
                log.warning("cached graph %s does not load (%s); optimizing the model again", cached, exc)
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("graph cache %s cannot be created (%s): models load uncached", self.root, exc)
            return ort.InferenceSession(source, options, providers=providers)
        written = self.root / f".{cached.name}.{os.getpid()}.tmp"
        options.optimized_model_filepath = str(written)
        try:
            session = ort.InferenceSession(source, options, providers=providers)
        except Exception:
            # Not writable, or a graph ORT cannot write in one file (over 2 GB): load it uncached,
            # which raises what is wrong with the model if that was the cause.
            written.unlink(missing_ok=True)
            options.optimized_model_filepath = ""
            return ort.InferenceSession(source, options, providers=providers)
        try:
            os.replace(written, cached)
            self._prune()
        except OSError as exc:  # the directory went away under us: the session is good regardless
            log.warning("graph cache %s: %s", self.root, exc)
        return session

    def _prune(self) -> None:
        """Remove graphs no load has used for UNUSED_DAYS (a model version replaced, a file
        moved, another ONNX Runtime), so the cache holds what is in use; run when one is added."""
        oldest = time.time() - UNUSED_DAYS * 86400
        for path in self.root.glob("*.onnx"):
            with contextlib.suppress(FileNotFoundError):  # another worker pruned it first
                if path.stat().st_mtime < oldest:
                    path.unlink()
                    log.info("graph cache: removed %s, unused for %d days", path.name, UNUSED_DAYS)
