"""Whether the state file may have changed since the last look: a stat, not a query.

The hub looks twice a second for requests other processes leave in the state store
(``release --now``, ``deliver``, the local page's buttons). A query each time kept an idle
proxy busy for about 0.1% of a CPU; with nothing asked, the file and its write-ahead log keep
their size and modification time, so a look that finds them as they were skips the query.
Every commit writes one of them, but two writes within one tick of the file system's clock
that leave the same size would look alike: a query still runs every ``sure_every`` seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["StoreWatch"]

_SURE_EVERY = 10.0  # seconds: the longest a request can wait on a change the stat missed

_Mark = tuple[tuple[int, int] | None, ...]


class StoreWatch:
    def __init__(
        self,
        path: Path,
        sure_every: float = _SURE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # SQLite's WAL mode: commits go to "-wal" first, into the file at a checkpoint.
        self._files = (str(path), str(path.with_name(path.name + "-wal")))  # stat()ed as is
        self.sure_every = sure_every  # seconds
        self._clock = clock
        self._mark: _Mark | None = None
        self._sure_at = 0.0

    def changed(self) -> bool:
        """True when a query may find something new: the files changed since the last call
        that said True (or this is the first call, or ``sure_every`` has passed)."""
        mark = (_stamp(self._files[0]), _stamp(self._files[1]))
        now = self._clock()
        if mark == self._mark and now < self._sure_at:
            return False
        self._mark, self._sure_at = mark, now + self.sure_every
        return True


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # not there (yet): its coming is a change
    return st.st_mtime_ns, st.st_size
