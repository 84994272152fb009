"""The allocator tuning that keeps megabyte messages on the heap."""

import ctypes
import subprocess
import sys

import pytest

# glibc's mallinfo2 (2.33+): hblks counts the chunks that are an mmap of their own
_PROBE = """
import ctypes, sys
from producer.malloc import keep_message_buffers

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert keep_message_buffers()
before = libc.mallinfo2().hblks
buffer = bytearray(4 << 20)
print(libc.mallinfo2().hblks - before)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="needs glibc 2.33+ (mallinfo2)")
@pytest.mark.parametrize(("mode", "mmapped"), [("default", 1), ("tuned", 0)])
def test_a_4_mib_buffer_comes_from_the_heap_once_tuned(mode: str, mmapped: int) -> None:
    """Untuned, glibc gives the buffer an mmap of its own (page faults on every message)."""
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    assert int(done.stdout) == mmapped
