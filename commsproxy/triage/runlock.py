"""Who is running: a lock file that ``commsproxy run`` holds for as long as it runs.

Two ``run`` processes on one state directory would both triage INBOX and both release batches,
so ``run`` takes an exclusive lock on ``run.lock`` first (``filelock``: ``flock`` on Linux and
macOS, ``LockFileEx`` on Windows). The CLI commands ask the same lock whether a ``run`` is
alive, which tells them whether a release request will be served or whether they must release
by themselves. A lock, unlike a pid file, dies with its process: a crash or ``kill -9`` leaves
no stale "running" behind.

The holder's pid goes to ``run.pid`` beside the lock, only for messages; the lock alone says
whether the holder is alive. It is a separate file because Windows locks are mandatory: no
other process could read a pid inside the locked file.

A lock belongs to an open file, not to a process: two ``RunLock`` objects in one process
conflict like two processes would.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from filelock import FileLock, Timeout

__all__ = ["FILENAME", "PID_FILENAME", "RunLock", "RunLockError", "running_pid"]

FILENAME = "run.lock"
PID_FILENAME = "run.pid"

#: ``running_pid`` holds the lock for an instant to see whether anyone else does; ``acquire``
#: retries for this long so that a ``status`` at the very moment ``run`` starts does not make
#: ``run`` believe it is a duplicate.
_ACQUIRE_PATIENCE = 0.25
#: How long ``running_pid`` waits for a holder that has the lock but has not written its pid yet.
_PID_PATIENCE = 1.0
_POLL = 0.01


class RunLockError(Exception):
    """The lock cannot be taken: another ``run`` has it, or the file cannot be opened."""


def _file_lock(path: Path) -> FileLock:
    # thread_local=False: ``run`` may give the lock up from another thread than took it.
    return FileLock(path, mode=0o600, thread_local=False, poll_interval=_POLL)


class RunLock:
    """The exclusive lock of one ``commsproxy run`` on ``state_dir``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / FILENAME
        self.pid_path = state_dir / PID_FILENAME
        self._lock: FileLock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def acquire(self) -> bool:
        """Take the lock without waiting on its holder; False if another process has it.

        Creates the state directory (private: it holds the state file with senders and
        subjects) and the lock file as needed, then writes this process's pid beside it.
        """
        if self._lock is not None:
            return True
        lock = _file_lock(self.path)
        try:
            if not self.state_dir.is_dir():
                self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                self.state_dir.chmod(0o700)
            lock.acquire(timeout=_ACQUIRE_PATIENCE)
        except Timeout:
            return False
        except OSError as exc:
            raise RunLockError(f"cannot lock {self.path}: {exc}") from exc
        try:
            _write_pid(self.pid_path)
        except OSError as exc:
            lock.release()
            raise RunLockError(f"cannot write the pid file {self.pid_path}: {exc}") from exc
        self._lock = lock
        return True

    def release(self) -> None:
        """Give the lock up; harmless when not held."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        # The pid goes first: a reader that sees the lock held waits for a pid, never a stale one.
        with contextlib.suppress(OSError):
            self.pid_path.unlink(missing_ok=True)
        lock.release()

    def __enter__(self) -> Self:
        if not self.acquire():
            pid = _read_pid(self.pid_path)
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

    Never creates the state directory, so asking does not leave one behind. Returns 0 in the
    unlikely case that the lock is held but its holder's pid cannot be read.
    """
    path = state_dir / FILENAME
    if not path.exists():
        return None  # no lock file: no run has ever locked this directory
    # A holder writes its pid right after locking and removes it just before unlocking, so a
    # missing pid under a held lock is a moment to wait out, not an answer.
    deadline = time.monotonic() + _PID_PATIENCE
    probe = _file_lock(path)
    while True:
        try:
            probe.acquire(blocking=False)
        except Timeout:
            pid = _read_pid(state_dir / PID_FILENAME)
            if pid is not None:
                return pid
            if time.monotonic() >= deadline:
                return 0
            time.sleep(_POLL)
        except OSError:
            return None  # the state directory went away meanwhile: nobody runs there
        else:
            probe.release()
            return None


def _write_pid(path: Path) -> None:
    # Written whole under another name, then renamed: a reader sees no pid or the whole pid.
    partial = path.with_name(path.name + ".new")
    partial.write_text(f"{os.getpid()}\n")
    partial.chmod(0o600)
    partial.replace(path)


def _read_pid(path: Path) -> int | None:
    try:
        return _pid_in(path.read_bytes()[:64])
    except OSError:
        return None


def _pid_in(data: bytes) -> int | None:
    first = data.split(b"\n", 1)[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None
