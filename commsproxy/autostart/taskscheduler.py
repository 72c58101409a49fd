"""Windows: a per-user scheduled task that starts commsproxy at logon, with no console window.

The task is defined in Task Scheduler's XML (schema ``2004/02/mit/task``, version 1.2) and
registered with ``schtasks /Create /XML``, which is the only way ``schtasks`` takes what a
logon task for one user needs: a ``LogonTrigger`` for this user, an interactive token with
least privilege (no password stored, no elevation), no 72-hour time limit, a start on battery,
and restarts after a failure. The program is the console-less ``commsproxyw.exe`` or
``pythonw.exe`` (see ``launch_for``), so nothing shows on screen.
"""

from __future__ import annotations

import csv
import getpass
import io
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path

from .base import NAME, Launch, Outcome, Runner, State, env_dir, ran

__all__ = ["NAMESPACE", "TASK", "install", "render_task", "status", "task_file", "uninstall"]

TASK = NAME
NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"


def task_file(home: Path, env: Mapping[str, str]) -> Path:
    """Where the task's definition is kept: the user's local app data."""
    local = env_dir(env, "LOCALAPPDATA", home / "AppData" / "Local")
    return local / NAME / f"{TASK}-task.xml"


def windows_arguments(args: tuple[str, ...]) -> str:
    """Arguments as one command line, quoted as Windows programs read them."""
    return subprocess.list2cmdline(list(args))


def render_task(launch: Launch, user: str) -> str:
    ET.register_namespace("", NAMESPACE)

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        element = ET.SubElement(parent, f"{{{NAMESPACE}}}{tag}")
        element.text = text
        return element

    task = ET.Element(f"{{{NAMESPACE}}}Task", {"version": "1.2"})
    info = sub(task, "RegistrationInfo")
    sub(info, "Author", user)
    sub(info, "Description", "commsproxy: local IMAP/SMTP proxy with mail triage")
    logon = sub(sub(task, "Triggers"), "LogonTrigger")
    sub(logon, "Enabled", "true")
    sub(logon, "UserId", user)
    principal = sub(sub(task, "Principals"), "Principal")
    principal.set("id", "Author")
    sub(principal, "UserId", user)
    sub(principal, "LogonType", "InteractiveToken")
    sub(principal, "RunLevel", "LeastPrivilege")
    settings = sub(task, "Settings")
    for tag, value in (
        ("MultipleInstancesPolicy", "IgnoreNew"),
        ("DisallowStartIfOnBatteries", "false"),
        ("StopIfGoingOnBatteries", "false"),
        ("AllowHardTerminate", "true"),
        ("StartWhenAvailable", "true"),
        ("AllowStartOnDemand", "true"),
        ("Enabled", "true"),
        ("Hidden", "false"),
        ("ExecutionTimeLimit", "PT0S"),  # the default, 72 hours, would stop the proxy
    ):
        sub(settings, tag, value)
    restart = sub(settings, "RestartOnFailure")
    sub(restart, "Interval", "PT1M")
    sub(restart, "Count", "999")
    actions = sub(task, "Actions")
    actions.set("Context", "Author")
    action = sub(actions, "Exec")
    program, *args = launch.argv
    sub(action, "Command", program)
    sub(action, "Arguments", windows_arguments(tuple(args)))
    ET.indent(task)
    # schtasks reads the file in the encoding its declaration names; UTF-16 is what it writes.
    return '<?xml version="1.0" encoding="UTF-16"?>\n' + ET.tostring(task, encoding="unicode")


def _user(env: Mapping[str, str]) -> str:
    domain, name = env.get("USERDOMAIN", ""), env.get("USERNAME") or getpass.getuser()
    return f"{domain}\\{name}" if domain else name


def install(launch: Launch, home: Path, env: Mapping[str, str], runner: Runner) -> Outcome:
    outcome = Outcome()
    path = task_file(home, env)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_task(launch, _user(env)), encoding="utf-16")
    outcome.wrote.append(path)
    create = ["schtasks", "/Create", "/TN", TASK, "/XML", str(path), "/F"]
    if ran(outcome, runner, create).returncode != 0:
        outcome.notes.append(f"the task is not registered; try: {' '.join(create)}")
        return outcome
    ran(outcome, runner, ["schtasks", "/Run", "/TN", TASK])
    return outcome


def uninstall(home: Path, env: Mapping[str, str], runner: Runner) -> Outcome:
    outcome = Outcome()
    ran(outcome, runner, ["schtasks", "/End", "/TN", TASK])
    ran(outcome, runner, ["schtasks", "/Delete", "/TN", TASK, "/F"])
    path = task_file(home, env)
    if path.exists():
        path.unlink()
        outcome.removed.append(path)
    return outcome


def status(home: Path, env: Mapping[str, str], runner: Runner) -> State:
    path = task_file(home, env)
    result = runner(["schtasks", "/Query", "/TN", TASK, "/FO", "CSV", "/NH"])
    if result.returncode != 0:
        return State(False, path, False, False, "no scheduled task named commsproxy")
    rows = [row for row in csv.reader(io.StringIO(result.stdout)) if row]
    # Columns: task name, next run time, status ("Ready", "Running", "Disabled"; localized).
    state = rows[0][2] if rows and len(rows[0]) > 2 else ""
    return State(
        True, path, state != "Disabled", state == "Running", f"Task Scheduler: {state or '?'}"
    )
