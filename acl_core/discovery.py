"""Which accelerator devices this host shows, honouring the visibility variables.

CUDA and the Ascend runtime renumber visible devices from 0, so a logical id is what the
engine takes; the physical id is reported for people reading ``aclq devices``.
"""

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

#: each accelerator kind: the variable that narrows visibility, and where its devices appear
_VISIBILITY = {"cuda": "CUDA_VISIBLE_DEVICES", "cann": "ASCEND_RT_VISIBLE_DEVICES"}
#: ONNX Runtime provider -> accelerator kind
KINDS = {"CUDAExecutionProvider": "cuda", "CANNExecutionProvider": "cann"}


@dataclass(frozen=True)
class VisibleDevice:
    logical_id: int
    physical_id: int
    memory_bytes: int | None  #: None where the host does not say


def _present(kind: str, dev: Path, proc: Path) -> list[int]:
    """Physical ids the host has: /proc/driver/nvidia/gpus/* or /dev/davinciN."""
    if kind == "cuda":
        gpus = proc / "driver" / "nvidia" / "gpus"
        return list(range(len(list(gpus.iterdir())))) if gpus.is_dir() else []
    return sorted(int(m.group(1)) for p in dev.glob("davinci*") if (m := re.fullmatch(r"davinci(\d+)", p.name)))


def _cuda_memory() -> dict[int, int]:
    """Total memory per physical GPU from nvidia-smi, when it is installed."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return {}
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    rows = (line.split(",") for line in out.splitlines() if "," in line)
    return {int(i): int(mib) << 20 for i, mib in rows}


def visible_devices(
    kind: str, env: Mapping[str, str] = os.environ, dev: Path = Path("/dev"), proc: Path = Path("/proc")
) -> list[VisibleDevice]:
    """The devices of ``kind`` ("cuda" or "cann") this process may use, in logical order."""
    present = _present(kind, dev, proc)
    narrowed = env.get(_VISIBILITY[kind])
    if narrowed is not None:
        wanted = [int(x) for x in narrowed.split(",") if x.strip().isdigit()]
        physical = [p for p in wanted if p in present] if present else wanted
    else:
        physical = present
    memory = _cuda_memory() if kind == "cuda" and physical else {}
    return [VisibleDevice(i, p, memory.get(p)) for i, p in enumerate(physical)]


def runtime_index(provider: str, host_device: int, env: Mapping[str, str] = os.environ) -> int:
    """The runtime's index for the host's device ``host_device``.

    A process that sees only some devices (a container given NPU 3 sees it as device 0) binds
    the index under which the host's device appears; otherwise the numbers are the same.
    """
    kind = KINDS.get(provider)
    if kind is None or _VISIBILITY[kind] not in env:
        return host_device
    for device in visible_devices(kind, env):
        if device.physical_id == host_device:
            return device.logical_id
    return host_device
