"""Who is running: a lock file that ``commsproxy run`` holds for as long as it runs.

Two ``run`` processes on one state directory would both triage INBOX and both release batches,
so ``run`` takes an exclusive ``flock`` on ``run.lock`` first. The CLI commands ask the same lock
whether a ``run`` is alive, which tells them whether a release request will be served or whether
they must release by themselves. A lock, unlike a pid file, dies with its process: a crash or
``kill -9`` leaves no stale "running" behind. The pid written into the file is only for
messages; the lock alone says whether the holder is alive.

``flock`` belongs to an open file description, not to a process: two ``RunLock`` objects in one
process conflict like two processes would, and a child forked without ``exec`` shares the
parent's lock (the file is opened close-on-exec, so programs started with ``exec`` do not).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["FILENAME", "RunLock", "RunLockError", "running_pid"]

FILENAME = "run.lock"

#: ``running_pid`` holds a shared lock for an instant; ``acquire`` retries for this long so that
#: a ``status`` at the very moment ``run`` starts does not make ``run`` believe it is a duplicate.
_ACQUIRE_PATIENCE = 0.25
#: How long ``running_pid`` waits for a holder that has the lock but has not written its pid yet.
_PID_PATIENCE = 1.0
_POLL = 0.01


class RunLockError(Exception):
    """The lock cannot be taken: another ``run`` has it, or the file cannot be opened."""


class RunLock:
    """The exclusive lock of one ``commsproxy run`` on ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / FILENAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock without waiting on its holder; False if another process has it.

        Creates the state directory (private: it holds the state file with senders and
        subjects) and the lock file as needed, then writes this process's pid into the file.
        """
        if self._fd is not None:
            return True
        try:
            if not self.state_dir.is_dir():
                self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.state_dir.chmod(0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise RunLockError(f"cannot open the lock file {self.path}: {exc}") from exc
        deadline = time.monotonic() + _ACQUIRE_PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(_POLL)
            except OSError as exc:
                os.close(fd)
                raise RunLockError(f"cannot lock {self.path}: {exc}") from exc
        # Write over the old pid, then cut what is left of it: a reader sees an old or the new
        # pid on the first line, never an empty file in between.
        text = f"{os.getpid()}\n".encode()
        try:
            os.pwrite(fd, text, 0)
            os.ftruncate(fd, len(text))
        except OSError as exc:
            os.close(fd)
            raise RunLockError(f"cannot write to the lock file {self.path}: {exc}") from exc
        self._fd = fd
        return True

    def release(self) -> None:
        """Give the lock up; harmless when not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no pid of a process that has stopped running
        os.close(fd)  # closing the last descriptor of the file description drops the lock

    def __enter__(self) -> Self:
        if not self.acquire():
            pid = _read_pid(self.path)
            who = f" (pid {pid})" if pid else ""
            raise RunLockError(
                f"another commsproxy run{who} is using {self.state_dir}; "
                "stop it first, or give this one another state_dir"
            )
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def running_pid(state_dir: Path) -> int | None:
    """The pid of the process holding ``state_dir``'s run lock, or None when none holds it.

    Never creates anything, so asking does not leave a state directory behind. Returns 0 in
    the unlikely case that the lock is held but its holder's pid cannot be read.
    """
    path = state_dir / FILENAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None  # no lock file: no run has ever locked this directory
    try:
        # A holder writes its pid right after locking and cuts it just before unlocking, so an
        # empty file under a held lock is a moment to wait out, not an answer.
        deadline = time.monotonic() + _PID_PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _pid_in(os.pread(fd, 64, 0))
                if pid is not None:
                    return pid
                if time.monotonic() >= deadline:
                    return 0
                time.sleep(_POLL)
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)
                return None
    finally:
        os.close(fd)


def _read_pid(path: Path) -> int | None:
    try:
        return _pid_in(path.read_bytes()[:64])
    except OSError:
        return None


def _pid_in(data: bytes) -> int | None:
    first = data.split(b"\n", 1)[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None
