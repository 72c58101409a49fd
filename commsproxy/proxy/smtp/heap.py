"""Big blocks of memory straight back to the system when freed (glibc only).

A message passes through the process in big pieces (the after-send hook's copy, the parser's,
filing's APPEND). glibc raises its mmap threshold after freeing a big mmapped block, so the next
big blocks come from the heap and stay with the process once freed: five 30 MiB messages sent
with triage left it about 90 MiB larger than before, with nothing in it. Fixing the thresholds
(blocks of 1 MiB and more mmapped, the heap trimmed above 8 MiB free) gives them back.
Elsewhere (musl, macOS, Windows) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

__all__ = ["return_big_blocks"]

log = logging.getLogger("commsproxy.smtp")

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 8 << 20


def return_big_blocks() -> bool:
    """Set glibc's thresholds for this process; False where there is no mallopt."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    done = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and done
    if not done:
        log.debug("smtp: mallopt refused the thresholds")
    return bool(done)
