"""glibc's malloc thresholds for the relays, set once per process (glibc only; elsewhere, such
as musl, macOS or Windows, nothing is done).

One setting serves both relays. IMAP: every read allocates blocks of up to 256 KiB and frees
them once written on; with glibc's default thresholds (128 KiB) each is fresh memory again,
one page fault per 4 KiB touched (about half the relay's CPU per MB of a bulk FETCH). SMTP: a
message passes through in big pieces, and glibc raises its mmap threshold after freeing a big
mmapped block, so later big blocks stay in the heap once freed (five 30 MiB messages left the
process about 90 MiB larger). Fixing both thresholds does both: blocks under 1 MiB come from the
heap and are reused, bigger ones are mmapped and go back when freed, and at most 8 MiB of free
heap stays with the process.
"""

from __future__ import annotations

import ctypes
import logging
import platform

__all__ = ["tune_malloc"]

log = logging.getLogger("commsproxy")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
_MMAP = 1 << 20
_TRIM = 8 << 20

_done = False


def tune_malloc() -> bool:
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
        log.debug("could not set malloc thresholds")
    return _done
