"""The run lock: one ``commsproxy run`` per state directory, and who it is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from commsproxy.triage.runlock import PID_FILENAME, RunLock, RunLockError, running_pid

ROOT = Path(__file__).resolve().parents[2]

# Takes the lock, says so, and keeps it until its stdin closes.
HOLDER = """
import sys
from pathlib import Path
from commsproxy.triage.runlock import RunLock
lock = RunLock(Path(sys.argv[1]))
print("locked" if lock.acquire() else "busy", flush=True)
sys.stdin.read()
lock.release()
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on ``tmp_path / "state"``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "state")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "locked"
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def test_acquire_writes_pid_and_creates_private_dir(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    lock = RunLock(state)
    assert lock.acquire()
    try:
        assert lock.held
        assert (state.stat().st_mode & 0o777) == 0o700
        assert (state / PID_FILENAME).read_text() == f"{os.getpid()}\n"
        assert lock.acquire()  # acquiring again is harmless
    finally:
        lock.release()
    assert not lock.held
    assert not (state / PID_FILENAME).exists()  # no pid of a process that has stopped running
    lock.release()  # releasing again is harmless


def test_running_pid_without_a_lock_file_creates_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert running_pid(state) is None
    assert not state.exists()


def test_running_pid_is_none_once_released(tmp_path: Path) -> None:
    with RunLock(tmp_path):
        pass
    assert running_pid(tmp_path) is None
    assert RunLock(tmp_path).acquire()


def test_two_locks_in_one_process_conflict(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    assert first.acquire()
    try:
        assert not second.acquire()
        assert running_pid(tmp_path) == os.getpid()
        with pytest.raises(RunLockError, match=rf"another commsproxy run \(pid {os.getpid()}\)"):
            second.__enter__()
    finally:
        first.release()
    assert second.acquire()
    second.release()


def test_another_process_holds_the_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    state = tmp_path / "state"
    assert running_pid(state) == holder.pid
    lock = RunLock(state)
    assert not lock.acquire()
    assert not lock.held
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=10) == 0
    assert running_pid(state) is None
    assert lock.acquire()
    assert running_pid(state) == os.getpid()
    lock.release()


def test_a_killed_holder_leaves_no_lock(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    state = tmp_path / "state"
    assert running_pid(state) == holder.pid
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)
    # Its pid is still in the file, but nobody holds the lock.
    assert (state / PID_FILENAME).read_text().strip() == str(holder.pid)
    assert running_pid(state) is None
    with RunLock(state) as lock:
        assert lock.held


def test_a_second_run_is_refused_naming_the_holder(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    with (
        pytest.raises(RunLockError, match=rf"another commsproxy run \(pid {holder.pid}\)"),
        RunLock(tmp_path / "state"),
    ):
        pass
