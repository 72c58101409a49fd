"""The relay's malloc thresholds: a freed read buffer is reused, not faulted in afresh."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# 50 times as a relay's read does: two 256 KiB blocks (the bytes read, the copy handed on) and
# the stream's 512 KiB buffer, touched, then freed; prints the page faults it took.
_CYCLES = """
import ctypes, resource, sys
from commsproxy.proxy import heap
if sys.argv[1] == "keep":
    assert heap.tune_malloc() and heap.tune_malloc()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    blocks = []
    for size in (256 << 10, 512 << 10, 256 << 10):
        blocks.append(libc.malloc(size))
        ctypes.memset(blocks[-1], 1, size)
    for block in blocks:
        libc.free(block)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _CYCLES, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_freed_read_buffer_is_reused() -> None:
    assert _faults("default") >= 50 * 64  # glibc's own thresholds: fresh pages every time
    assert _faults("keep") < 600  # the first round's 256 pages, then hardly any
