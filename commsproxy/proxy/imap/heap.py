"""Keeping the relay's read buffers in the heap, so that bulk transfers do not page-fault.

Every read of a session allocates blocks of up to 256 KiB (the stream's buffer, the bytes it
hands out), and frees them once written on. glibc serves a block that size from fresh memory
(mmap, or the top of the heap) and returns it to the kernel as soon as it is freed: with its
default thresholds (128 KiB) the next read's block is new memory again, and touching it costs
one page fault per 4 KiB. Measured on a bulk FETCH that was about half the relay's CPU time per
MB, and 5x the page faults of a plain copy loop. Raising both thresholds above the largest
block a read needs (the stream buffer holds up to 768 KiB) keeps the memory for the next read;
at most ``_TRIM`` of free heap stays with the process. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import logging
import platform

__all__ = ["keep_read_buffers"]

log = logging.getLogger("commsproxy.imap")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_MMAP = 1 << 20  # blocks below this come from the heap and are reused
_TRIM = 2 << 20  # free memory at the top of the heap kept rather than handed back

_done = False


def keep_read_buffers() -> bool:
    """Set glibc's thresholds once per process; False where that is not glibc (or it failed)."""
    global _done
    if _done:
        return True
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # Setting one fixes the other too (glibc stops adjusting them itself): set both.
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM))
    if not _done:
        log.debug("imap: could not set malloc thresholds")
    return _done
