"""Linux: a systemd user unit, started when the user's session starts, restarted on failure.

The unit lives in ``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``).
``WantedBy=default.target`` starts it with the user's systemd instance, which starts at login
(or at boot with ``loginctl enable-linger``). Without a user instance (a container, a session
without D-Bus) install still writes the unit and says what to run once there is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from .base import NAME, Launch, Outcome, Runner, State, env_dir, ran

__all__ = ["UNIT", "install", "render_unit", "status", "uninstall", "unit_path"]

UNIT = f"{NAME}.service"


def unit_path(home: Path, env: Mapping[str, str]) -> Path:
    return env_dir(env, "XDG_CONFIG_HOME", home / ".config") / "systemd" / "user" / UNIT


def quote(arg: str) -> str:
    """One argument of ``ExecStart=`` as systemd reads it (systemd.syntax: quoting, ``%``)."""
    text = arg.replace("%", "%%")
    if text and not any(c in text for c in " \t\n\"\\'$;"):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


def render_unit(launch: Launch) -> str:
    exec_start = " ".join(quote(arg) for arg in launch.argv)
    # No network-online.target: a user manager has none, and commsproxy retries its servers.
    return f"""\
[Unit]
Description=commsproxy: local IMAP/SMTP proxy with mail triage

[Service]
Type=exec
ExecStart={exec_start}
# SIGTERM asks for the orderly stop: clients get BYE, SMTP transactions finish.
KillSignal=SIGTERM
TimeoutStopSec=30
Restart=on-failure
RestartSec=10

[Install]
WantedBy=default.target
"""


def _user_manager(runner: Runner) -> str | None:
    """None when ``systemctl --user`` works here, else why not."""
    result = runner(["systemctl", "--user", "show-environment"])
    if result.returncode == 0:
        return None
    said = (result.stderr or result.stdout).strip().splitlines()
    return said[0] if said else f"systemctl --user exited with {result.returncode}"


def install(launch: Launch, home: Path, env: Mapping[str, str], runner: Runner) -> Outcome:
    outcome = Outcome()
    path = unit_path(home, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_unit(launch), encoding="utf-8")
    outcome.wrote.append(path)
    why_not = _user_manager(runner)
    if why_not is not None:
        outcome.notes.append(
            f"systemctl --user is not available here ({why_not}). In a login session with a "
            f"systemd user instance, run: systemctl --user daemon-reload && "
            f"systemctl --user enable --now {UNIT}"
        )
        return outcome
    for argv in (
        ["systemctl", "--user", "daemon-reload"],
        ["systemctl", "--user", "enable", "--now", UNIT],
    ):
        if ran(outcome, runner, argv).returncode != 0:
            outcome.notes.append(f"see why with: systemctl --user status {UNIT}")
            return outcome
    outcome.notes.append(
        f"to start it at boot rather than at login: loginctl enable-linger; "
        f"its log: journalctl --user -u {UNIT}"
    )
    return outcome


def uninstall(home: Path, env: Mapping[str, str], runner: Runner) -> Outcome:
    outcome = Outcome()
    path = unit_path(home, env)
    manager = _user_manager(runner) is None
    if manager:
        ran(outcome, runner, ["systemctl", "--user", "disable", "--now", UNIT])
    if path.exists():
        path.unlink()
        outcome.removed.append(path)
    if manager:
        ran(outcome, runner, ["systemctl", "--user", "daemon-reload"])
        ran(outcome, runner, ["systemctl", "--user", "reset-failed", UNIT])
    elif outcome.removed:
        outcome.notes.append(
            "systemctl --user is not available here: a commsproxy it started earlier keeps "
            f"running until that session ends (or: systemctl --user stop {UNIT})"
        )
    return outcome


def _answer(runner: Runner, argv: Sequence[str]) -> str:
    return runner(argv).stdout.strip()


def status(home: Path, env: Mapping[str, str], runner: Runner) -> State:
    path = unit_path(home, env)
    installed = path.exists()
    why_not = _user_manager(runner)
    if why_not is not None:
        return State(installed, path, None, None, f"systemctl --user is not available: {why_not}")
    enabled = _answer(runner, ["systemctl", "--user", "is-enabled", UNIT])
    active = _answer(runner, ["systemctl", "--user", "is-active", UNIT])
    return State(
        installed, path, enabled == "enabled", active == "active", f"systemd: {enabled}, {active}"
    )
