"""macOS: a launchd agent in ``~/Library/LaunchAgents``, loaded at login and kept alive.

``RunAtLoad`` starts it when the user logs in (and at install); ``KeepAlive`` with
``SuccessfulExit = false`` starts it again only when it stopped with an error, so an orderly
stop stays stopped. Its output goes to ``~/Library/Logs/commsproxy``.
"""

from __future__ import annotations

import os
import plistlib
from collections.abc import Mapping
from pathlib import Path

from .base import NAME, Launch, Outcome, Runner, State, ran

__all__ = ["LABEL", "agent_path", "install", "render_plist", "status", "uninstall"]

LABEL = f"org.{NAME}.run"


def agent_path(home: Path) -> Path:
    return home / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def log_dir(home: Path) -> Path:
    return home / "Library" / "Logs" / NAME


def render_plist(launch: Launch, logs: Path) -> bytes:
    agent: dict[str, object] = {
        "Label": LABEL,
        "ProgramArguments": list(launch.argv),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,  # seconds between restarts after a failure
        "ProcessType": "Background",
        "StandardOutPath": str(logs / f"{NAME}.out.log"),
        "StandardErrorPath": str(logs / f"{NAME}.err.log"),
    }
    return plistlib.dumps(agent)


def _domain(uid: int) -> str:
    return f"gui/{uid}"


def _uid() -> int:
    getuid = getattr(os, "getuid", None)  # not on Windows, where this module is never used
    return int(getuid()) if getuid is not None else 0


def install(launch: Launch, home: Path, env: Mapping[str, str], runner: Runner) -> Outcome:
    outcome = Outcome()
    path, logs = agent_path(home), log_dir(home)
    logs.mkdir(parents=True, exist_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    domain = _domain(_uid())
    if path.exists():  # a reinstall: the old definition must go before the new one loads
        ran(outcome, runner, ["launchctl", "bootout", f"{domain}/{LABEL}"])
    path.write_bytes(render_plist(launch, logs))
    outcome.wrote.append(path)
    if ran(outcome, runner, ["launchctl", "bootstrap", domain, str(path)]).returncode != 0:
        outcome.notes.append(f"see why with: launchctl print {domain}/{LABEL}")
    outcome.notes.append(f"its log: {logs}")
    return outcome


def uninstall(home: Path, env: Mapping[str, str], runner: Runner) -> Outcome:
    outcome = Outcome()
    path = agent_path(home)
    ran(outcome, runner, ["launchctl", "bootout", f"{_domain(_uid())}/{LABEL}"])
    if path.exists():
        path.unlink()
        outcome.removed.append(path)
    return outcome


def status(home: Path, env: Mapping[str, str], runner: Runner) -> State:
    path = agent_path(home)
    result = runner(["launchctl", "print", f"{_domain(_uid())}/{LABEL}"])
    loaded = result.returncode == 0
    running = loaded and "state = running" in result.stdout
    detail = "launchd: " + ("running" if running else "loaded" if loaded else "not loaded")
    return State(path.exists(), path, loaded, running, detail)
