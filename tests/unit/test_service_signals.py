"""Stopping in an orderly way on a signal, with and without ``loop.add_signal_handler``.

Windows has no ``add_signal_handler``; its branch (a plain handler that schedules the stop on
the loop thread-safely) runs here with ``sys.platform`` set to ``win32``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from commsproxy import signals
from commsproxy.config import load_config
from commsproxy.service import Running, RunOptions, plan, serve


@pytest.fixture
def windows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")


async def _stopped_by(signum: signal.Signals) -> bool:
    stop = asyncio.Event()
    restore = signals.install(asyncio.get_running_loop(), {signum: stop.set})
    try:
        signal.raise_signal(signum)
        async with asyncio.timeout(5):
            await stop.wait()
        return stop.is_set()
    finally:
        restore()


async def test_the_loop_handles_signals_on_posix() -> None:
    before = signal.getsignal(signal.SIGTERM)
    assert await _stopped_by(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) == before


@pytest.mark.usefixtures("windows")
async def test_windows_schedules_the_stop_from_a_plain_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()

    def missing(*args: object) -> None:
        raise AssertionError("add_signal_handler is not used on Windows")

    monkeypatch.setattr(loop, "add_signal_handler", missing)
    before = signal.getsignal(signal.SIGINT)
    assert await _stopped_by(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == before  # the previous handler is back


async def test_a_loop_without_signal_support_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    def unsupported(*args: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_signal_handler", unsupported)
    assert await _stopped_by(signal.SIGTERM)


def test_stop_signals_include_what_the_platform_has() -> None:
    found = signals.stop_signals()
    assert signal.SIGTERM in found
    assert signal.SIGINT in found


def test_serve_stops_cleanly_on_ctrl_c_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[triage]\nenabled = false\n[[login]]\nupstream_imap = "imap://127.0.0.1:1"\n'
        "allow_insecure = true\n",
        encoding="utf-8",
    )
    the_plan = plan(load_config(config, required=True), RunOptions(listen="127.0.0.1:0"))
    # Only now: the plan's TLS context would look for Windows' certificate store.
    monkeypatch.setattr(sys, "platform", "win32")
    seen: list[Running] = []

    def started(running: Running) -> None:
        seen.append(running)
        signal.raise_signal(signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)
    asyncio.run(serve(the_plan, started=started, grace=0.1))  # returns: SIGINT stopped it
    assert len(seen) == 1
    assert signal.getsignal(signal.SIGINT) == before
