"""Tune glibc's allocator for megabyte-sized messages.

Every message over the mmap threshold (128 KiB at first) is a fresh mmap whose pages fault in
one by one, then go back to the kernel when freed: for a 1 MiB tensor that is ~256 page faults
per copy, and it tripled a worker's time per 1 MiB job here (3.3 ms -> 2.1 ms with this). With
the threshold raised, such buffers come from the heap and are reused from one message to the
next. Worker processes call this at start; so do aclq's own commands and benchmarks. A library
user's process is left alone unless it calls this itself.
"""

import ctypes
import logging

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: buffers below this come from the heap (glibc caps the threshold at 32 MiB on 64-bit)
MMAP_THRESHOLD_BYTES = 32 << 20
#: free heap kept before memory is returned to the kernel
TRIM_THRESHOLD_BYTES = 256 << 20


def keep_message_buffers() -> bool:
    """Apply the tuning; False (and nothing changed) where the C library is not glibc."""
    try:
        # the symbols already loaded into this process, the C library's among them: no
        # ctypes.util.find_library, which forks `ldconfig -p` (a process per worker start)
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    log.debug("malloc tuned for large messages: %s", ok)
    return ok
