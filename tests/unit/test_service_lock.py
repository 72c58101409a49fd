"""``serve`` holds triage's run lock (and state store) exactly while it runs, whatever ends it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

import pytest

from commsproxy.config import load_config
from commsproxy.service import (
    Plan,
    Running,
    RunOptions,
    TriageStartError,
    _start_triage,
    plan,
    serve,
)
from commsproxy.triage.runlock import RunLock, running_pid
from commsproxy.triage.state_store import StoreError


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bundled model, never the developer's own trained one."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def make_plan(
    tmp_path: Path, state: Path, *, listen: str = "127.0.0.1:0", triage: str = ""
) -> Plan:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[proxy]\nstate_dir = "{state}"\n{triage}'
        '[[login]]\nupstream_imap = "imap://127.0.0.1:1"\nallow_insecure = true\n'
        'username = "me@example.com"\n',
        encoding="utf-8",
    )
    return plan(load_config(config, required=True), RunOptions(listen=listen))


def test_lock_is_held_while_running_and_given_up_after_a_clean_stop(
    tmp_path: Path, state: Path
) -> None:
    seen: list[int | None] = []
    stop = asyncio.Event()

    def started(running: Running) -> None:
        seen.append(running_pid(state))
        stop.set()

    asyncio.run(serve(make_plan(tmp_path, state), stop=stop, started=started, grace=0.1))
    assert seen == [os.getpid()]
    assert running_pid(state) is None


def test_lock_is_given_up_when_the_listener_cannot_start(tmp_path: Path, state: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            asyncio.run(serve(make_plan(tmp_path, state, listen=f"127.0.0.1:{port}"), grace=0.1))
    assert running_pid(state) is None


def test_lock_is_given_up_when_triage_cannot_start(tmp_path: Path, state: Path) -> None:
    missing = tmp_path / "missing.joblib"
    the_plan = make_plan(tmp_path, state, triage=f'[triage]\nmodel = "{missing}"\n')
    with pytest.raises(TriageStartError, match="model"):
        asyncio.run(serve(the_plan, grace=0.1))
    assert running_pid(state) is None


def test_a_second_run_on_the_same_state_dir_is_refused(tmp_path: Path, state: Path) -> None:
    with RunLock(state):
        with pytest.raises(TriageStartError, match="another commsproxy run"):
            asyncio.run(serve(make_plan(tmp_path, state), grace=0.1))
        assert running_pid(state) == os.getpid()  # the holder keeps its lock


def test_start_triage_enters_lock_and_store_on_the_stack(tmp_path: Path, state: Path) -> None:
    the_plan = make_plan(tmp_path, state)
    assert the_plan.triage is not None
    with contextlib.ExitStack() as held:
        hub = _start_triage(the_plan.triage, held)
        assert running_pid(state) == os.getpid()
        hub.store.pending_release_requests()
    assert running_pid(state) is None
    with pytest.raises(StoreError, match="closed"):
        hub.store.pending_release_requests()
