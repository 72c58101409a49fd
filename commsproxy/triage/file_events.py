"""The kernel says when a file in a folder is written (Linux inotify): an idle wait costs nothing.

The hub looks for requests other processes leave in the state store. Polling for them, even
with a stat (store_watch.py), wakes an idle proxy twice a second, and on a laptop each wake-up
costs a few hundred microseconds of CPU. On Linux inotify tells the loop when the store's
files are written, so the hub sleeps until then (and looks anyway every few seconds, in case an
event was missed). Elsewhere ``FileEvents.open`` gives None and the hub polls as before.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FileEvents"]

_IN_MODIFY, _IN_CLOSE_WRITE, _IN_MOVED_TO, _IN_CREATE = 0x2, 0x8, 0x80, 0x100
_MASK = _IN_MODIFY | _IN_CLOSE_WRITE | _IN_MOVED_TO | _IN_CREATE
_HEAD = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class FileEvents:
    def __init__(self, fd: int, names: frozenset[str]) -> None:
        self._fd = fd
        self._names = names
        self._news = False  # a watched file was written since the last wait ended
        self._waiter: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def open(cls, folder: Path, names: Iterable[str]) -> FileEvents | None:
        """Events for writes to ``names`` in ``folder``; None where inotify is not to be had."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        except (OSError, AttributeError):
            return None
        if fd < 0:
            return None
        if libc.inotify_add_watch(fd, os.fsencode(folder), _MASK) < 0:
            os.close(fd)
            return None
        return cls(fd, frozenset(names))

    def start(self) -> None:
        """Listen on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._read)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._loop = None
        os.close(self._fd)

    async def written(self, within: float) -> bool:
        """Until a watched file is written (True; at once if one was since the last call) or
        ``within`` seconds pass (False)."""
        if not self._news:
            assert self._loop is not None, "start() first"
            waiter = self._waiter = self._loop.create_future()
            timer = self._loop.call_later(within, _finish, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._waiter = None
        news, self._news = self._news, False
        return news

    def _read(self) -> None:
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        pos = 0
        while pos + _HEAD.size <= len(data):
            _, _, _, size = _HEAD.unpack_from(data, pos)
            name = data[pos + _HEAD.size : pos + _HEAD.size + size].rstrip(b"\0")
            pos += _HEAD.size + size
            if os.fsdecode(name) in self._names:
                self._news = True
        if self._news and self._waiter is not None:
            _finish(self._waiter)


def _finish(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
