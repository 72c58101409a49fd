"""Signals that stop or reload the running service, on every platform.

On Linux and macOS the event loop handles them itself (``loop.add_signal_handler``). Windows
has no such thing: there a plain ``signal.signal`` handler runs in the main thread between
bytecodes, so it only schedules the callback on the loop with ``call_soon_threadsafe`` (which
also wakes a loop that is waiting). Ctrl+C (SIGINT) and Ctrl+Break (SIGBREAK) arrive that way;
a scheduled task ended with ``schtasks /End`` is terminated without a signal.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Mapping
from types import FrameType

__all__ = ["install", "stop_signals"]


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that ask for an orderly stop here."""
    wanted = ("SIGTERM", "SIGINT", "SIGBREAK")  # SIGBREAK: Windows' Ctrl+Break
    return tuple(getattr(signal, name) for name in wanted if hasattr(signal, name))


def _loop_handles_signals() -> bool:
    return sys.platform != "win32"


def install(
    loop: asyncio.AbstractEventLoop, handlers: Mapping[signal.Signals, Callable[[], None]]
) -> Callable[[], None]:
    """Call each handler on ``loop`` when its signal arrives; returns what undoes it.

    Must be called from the main thread (Python delivers signals only there).
    """
    undo: list[Callable[[], None]] = []
    for signum, callback in handlers.items():
        if _loop_handles_signals():
            try:
                loop.add_signal_handler(signum, callback)
            except NotImplementedError:
                pass  # a loop without signal support (Windows' proactor): as on Windows
            else:
                undo.append(_loop_handler_undo(loop, signum))
                continue
        undo.append(_plain_handler(loop, signum, callback))

    def restore() -> None:
        for step in reversed(undo):
            step()

    return restore


def _plain_handler(
    loop: asyncio.AbstractEventLoop, signum: signal.Signals, callback: Callable[[], None]
) -> Callable[[], None]:
    def on_signal(received: int, frame: FrameType | None) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(callback)

    previous = signal.signal(signum, on_signal)

    def restore() -> None:
        signal.signal(signum, previous)

    return restore


def _loop_handler_undo(
    loop: asyncio.AbstractEventLoop, signum: signal.Signals
) -> Callable[[], None]:
    def restore() -> None:
        loop.remove_signal_handler(signum)

    return restore
