"""Starting commsproxy with the computer: ``commsproxy service install | uninstall | status``.

One module per platform renders its definition with pure functions and installs it with the
platform's own tool: a systemd user unit on Linux (``systemd.py``), a launchd agent on macOS
(``launchd.py``), a scheduled task at logon on Windows (``taskscheduler.py``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from . import launchd, systemd, taskscheduler
from .base import AutostartError, Launch, Outcome, Runner, State, launch_for, run_command

__all__ = [
    "AutostartError",
    "Launch",
    "Outcome",
    "Place",
    "State",
    "install",
    "launch_for",
    "place",
    "status",
    "uninstall",
]


@dataclass(frozen=True)
class Place:
    """Where and how to install: the platform, the user's home and environment, the runner."""

    platform: str
    home: Path
    env: Mapping[str, str]
    runner: Runner = run_command


def place() -> Place:
    """This machine, this user."""
    return Place(sys.platform, Path.home(), dict(os.environ))


def _module(platform: str) -> ModuleType:
    if platform.startswith("linux"):
        return systemd
    if platform == "darwin":
        return launchd
    if platform == "win32":
        return taskscheduler
    raise AutostartError(
        f"no autostart for this platform ({platform}): start `commsproxy run` another way"
    )


def install(launch: Launch, where: Place) -> Outcome:
    outcome: Outcome = _module(where.platform).install(launch, where.home, where.env, where.runner)
    return outcome


def uninstall(where: Place) -> Outcome:
    outcome: Outcome = _module(where.platform).uninstall(where.home, where.env, where.runner)
    return outcome


def status(where: Place) -> State:
    state: State = _module(where.platform).status(where.home, where.env, where.runner)
    return state
