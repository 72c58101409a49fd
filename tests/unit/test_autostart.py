"""``commsproxy service``: the unit, agent and task as rendered, and install/uninstall/status
against a fake home directory with the platform's tools replaced by a recording fake."""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.autostart import Place, install, launch_for, status, uninstall
from commsproxy.autostart.base import Launch
from commsproxy.autostart.launchd import LABEL, agent_path, render_plist
from commsproxy.autostart.systemd import render_unit, unit_path
from commsproxy.autostart.taskscheduler import NAMESPACE, render_task, task_file
from commsproxy.cli import main

PROGRAM = "/opt/commsproxy/bin/commsproxy"


class Recorder:
    """Stands in for systemctl, launchctl and schtasks: records each call, answers as told."""

    def __init__(self, answers: dict[str, tuple[int, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answers = answers or {}  # a call's words (joined) starting with a key -> answer

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        line = " ".join(argv)
        for start, (code, out) in self.answers.items():
            if line.startswith(start):
                return subprocess.CompletedProcess(list(argv), code, out, "" if code == 0 else out)
        return subprocess.CompletedProcess(list(argv), 0, "", "")

    def commands(self) -> list[str]:
        return [" ".join(call) for call in self.calls]


def launch(tmp_path: Path) -> Launch:
    return Launch((PROGRAM,), tmp_path / "my config" / "commsproxy.toml")


# -- which program the service starts ------------------------------------------------------


def test_launch_is_the_running_script_by_absolute_path(tmp_path: Path) -> None:
    script = tmp_path / "bin" / "commsproxy"
    script.parent.mkdir()
    script.write_text("")
    found = launch_for(Path("c.toml"), argv0=str(script), executable="/usr/bin/python3")
    assert found.program == (str(script),)
    assert found.argv == (str(script), "run", "--config", str(Path("c.toml").absolute()))


def test_launch_falls_back_to_the_interpreter_with_dash_m() -> None:
    found = launch_for(None, argv0="/src/commsproxy/__main__.py", executable="/venv/bin/python")
    assert found.argv == ("/venv/bin/python", "-m", "commsproxy", "run")


def test_launch_on_windows_prefers_the_console_less_gui_script(tmp_path: Path) -> None:
    scripts = tmp_path / "Scripts"
    scripts.mkdir()
    for name in ("commsproxy.exe", "commsproxyw.exe", "python.exe", "pythonw.exe"):
        (scripts / name).write_text("")
    gui = launch_for(
        None,
        argv0=str(scripts / "commsproxy.exe"),
        executable=str(scripts / "python.exe"),
        windows=True,
    )
    assert gui.program == (str(scripts / "commsproxyw.exe"),)
    (scripts / "commsproxyw.exe").unlink()
    quiet = launch_for(
        None,
        argv0=str(scripts / "commsproxy.exe"),
        executable=str(scripts / "python.exe"),
        windows=True,
    )
    assert quiet.program == (str(scripts / "pythonw.exe"), "-m", "commsproxy")


# -- Linux: systemd user unit --------------------------------------------------------------


def unit_settings(text: str) -> dict[str, str]:
    settings = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings[key] = value
    return settings


def test_systemd_unit_runs_this_commsproxy_and_restarts_on_failure(tmp_path: Path) -> None:
    the_launch = launch(tmp_path)
    settings = unit_settings(render_unit(the_launch))
    # systemd's quoting is shell-like for these characters, with % doubled.
    assert shlex.split(settings["ExecStart"]) == list(the_launch.argv)
    assert settings["Restart"] == "on-failure"
    assert settings["WantedBy"] == "default.target"
    percent = Launch((PROGRAM,), Path("/home/me/100%.toml"))
    assert unit_settings(render_unit(percent))["ExecStart"].endswith("/home/me/100%%.toml")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    # A real program (verify checks ExecStart is executable) and a config path with a space
    # and a percent sign, which both need quoting.
    the_launch = Launch((sys.executable, "-m", "commsproxy"), tmp_path / "my 100% config.toml")
    unit = tmp_path / "commsproxy.service"
    unit.write_text(render_unit(the_launch), encoding="utf-8")
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    result = subprocess.run(
        ["systemd-analyze", "verify", "--user", str(unit)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )
    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")


def test_systemd_install_writes_enables_and_starts(tmp_path: Path) -> None:
    fake = Recorder()
    where = Place("linux", tmp_path, {}, fake)
    outcome = install(launch(tmp_path), where)
    path = tmp_path / ".config" / "systemd" / "user" / "commsproxy.service"
    assert outcome.wrote == [path]
    assert path.read_text() == render_unit(launch(tmp_path))
    assert fake.commands() == [
        "systemctl --user show-environment",
        "systemctl --user daemon-reload",
        "systemctl --user enable --now commsproxy.service",
    ]
    assert any("enable --now" in line and "(ok)" in line for line in outcome.ran)


def test_systemd_install_without_a_user_manager_says_what_to_run(tmp_path: Path) -> None:
    fake = Recorder({"systemctl --user show-environment": (1, "Failed to connect to bus")})
    config_home = tmp_path / "xdg"
    outcome = install(
        launch(tmp_path), Place("linux", tmp_path, {"XDG_CONFIG_HOME": str(config_home)}, fake)
    )
    assert outcome.wrote == [config_home / "systemd" / "user" / "commsproxy.service"]
    assert fake.commands() == ["systemctl --user show-environment"]
    assert "Failed to connect to bus" in outcome.notes[0]
    assert "systemctl --user enable --now commsproxy.service" in outcome.notes[0]


def test_systemd_uninstall_stops_disables_and_removes(tmp_path: Path) -> None:
    fake = Recorder()
    where = Place("linux", tmp_path, {}, fake)
    install(launch(tmp_path), where)
    fake.calls.clear()
    outcome = uninstall(where)
    path = unit_path(tmp_path, {})
    assert outcome.removed == [path]
    assert not path.exists()
    assert fake.commands() == [
        "systemctl --user show-environment",
        "systemctl --user disable --now commsproxy.service",
        "systemctl --user daemon-reload",
        "systemctl --user reset-failed commsproxy.service",
    ]
    assert uninstall(where).removed == []  # again: nothing to remove, no error


def test_systemd_status(tmp_path: Path) -> None:
    fake = Recorder(
        {
            "systemctl --user is-enabled": (0, "enabled\n"),
            "systemctl --user is-active": (0, "active\n"),
        }
    )
    where = Place("linux", tmp_path, {}, fake)
    assert not status(where).installed
    install(launch(tmp_path), where)
    state = status(where)
    assert (state.installed, state.enabled, state.running) == (True, True, True)
    fake.answers["systemctl --user is-active"] = (3, "failed\n")
    assert status(where).running is False


# -- macOS: launchd agent ------------------------------------------------------------------


def test_launchd_plist_round_trips(tmp_path: Path) -> None:
    agent = plistlib.loads(render_plist(launch(tmp_path), tmp_path / "Logs"))
    assert agent["Label"] == LABEL
    assert agent["ProgramArguments"] == list(launch(tmp_path).argv)
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}  # restarted only after a failure
    assert agent["StandardOutPath"] == str(tmp_path / "Logs" / "commsproxy.out.log")
    assert agent["StandardErrorPath"] == str(tmp_path / "Logs" / "commsproxy.err.log")


def test_launchd_install_reinstall_uninstall(tmp_path: Path) -> None:
    fake = Recorder()
    where = Place("darwin", tmp_path, {}, fake)
    outcome = install(launch(tmp_path), where)
    path = tmp_path / "Library" / "LaunchAgents" / f"{LABEL}.plist"
    assert outcome.wrote == [path] == [agent_path(tmp_path)]
    assert (tmp_path / "Library" / "Logs" / "commsproxy").is_dir()
    domain = f"gui/{os.getuid()}"
    assert fake.commands() == [f"launchctl bootstrap {domain} {path}"]
    fake.calls.clear()
    install(launch(tmp_path), where)  # again: the old agent goes first
    assert fake.commands() == [
        f"launchctl bootout {domain}/{LABEL}",
        f"launchctl bootstrap {domain} {path}",
    ]
    fake.answers["launchctl print"] = (0, "state = running\n")
    state = status(where)
    assert (state.installed, state.enabled, state.running) == (True, True, True)
    fake.calls.clear()
    assert uninstall(where).removed == [path]
    assert fake.commands() == [f"launchctl bootout {domain}/{LABEL}"]
    assert not path.exists()


# -- Windows: scheduled task at logon ------------------------------------------------------


def child(parent: ET.Element, *path: str) -> ET.Element:
    found = parent.find("/".join(f"{{{NAMESPACE}}}{tag}" for tag in path))
    assert found is not None, path
    return found


def test_task_xml_has_what_the_schema_requires(tmp_path: Path) -> None:
    the_launch = Launch((r"C:\Users\me\venv\Scripts\pythonw.exe", "-m", "commsproxy"),
                        Path(r"C:\Users\me\my config.toml"))  # fmt: skip
    text = render_task(the_launch, r"HOST\me")
    task = ET.fromstring(text.encode("utf-16"))  # noqa: S314  (our own XML, as schtasks reads it)
    assert task.tag == f"{{{NAMESPACE}}}Task"
    assert task.get("version") == "1.2"
    # The schema requires Actions with at least one action, and an Exec's Command.
    exec_ = child(task, "Actions", "Exec")
    assert child(task, "Actions").get("Context") == child(task, "Principals", "Principal").get("id")
    assert child(exec_, "Command").text == r"C:\Users\me\venv\Scripts\pythonw.exe"
    assert (
        child(exec_, "Arguments").text == r'-m commsproxy run --config "C:\Users\me\my config.toml"'
    )
    assert child(task, "Triggers", "LogonTrigger", "UserId").text == r"HOST\me"
    principal = child(task, "Principals", "Principal")
    assert child(principal, "LogonType").text == "InteractiveToken"  # no stored password
    assert child(principal, "RunLevel").text == "LeastPrivilege"
    settings = child(task, "Settings")
    assert child(settings, "ExecutionTimeLimit").text == "PT0S"  # no 72-hour stop
    assert child(settings, "DisallowStartIfOnBatteries").text == "false"
    assert child(settings, "RestartOnFailure", "Interval").text == "PT1M"


def test_task_install_uninstall_status(tmp_path: Path) -> None:
    fake = Recorder()
    env = {"LOCALAPPDATA": str(tmp_path / "Local"), "USERDOMAIN": "HOST", "USERNAME": "me"}
    where = Place("win32", tmp_path, env, fake)
    outcome = install(launch(tmp_path), where)
    path = tmp_path / "Local" / "commsproxy" / "commsproxy-task.xml"
    assert outcome.wrote == [path] == [task_file(tmp_path, env)]
    task = ET.fromstring(path.read_bytes())  # noqa: S314  (our own file: UTF-16, declared)
    assert child(task, "Triggers", "LogonTrigger", "UserId").text == r"HOST\me"
    assert fake.commands() == [
        f"schtasks /Create /TN commsproxy /XML {path} /F",
        "schtasks /Run /TN commsproxy",
    ]
    fake.answers["schtasks /Query"] = (0, '"\\commsproxy","N/A","Running"\n')
    state = status(where)
    assert (state.installed, state.enabled, state.running) == (True, True, True)
    fake.calls.clear()
    assert uninstall(where).removed == [path]
    assert fake.commands() == [
        "schtasks /End /TN commsproxy",
        "schtasks /Delete /TN commsproxy /F",
    ]
    fake.answers["schtasks /Query"] = (1, "ERROR: The system cannot find the file specified.")
    assert not status(where).installed


# -- the commands --------------------------------------------------------------------------


@pytest.fixture
def fake_linux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    fake = Recorder({"systemctl --user is-enabled": (0, "enabled\n"),
                     "systemctl --user is-active": (0, "active\n")})  # fmt: skip
    monkeypatch.setattr(
        "commsproxy.cli.service.place", lambda: Place("linux", tmp_path / "home", {}, fake)
    )
    return fake


def test_service_commands_say_what_they_wrote_and_where(
    tmp_path: Path, fake_linux: Recorder
) -> None:
    config = tmp_path / "commsproxy.toml"
    config.write_text("")
    runner = CliRunner()
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "commsproxy.service"
    result = runner.invoke(main, ["service", "status"])
    assert result.exit_code == 1
    assert f"installed: no ({unit})" in result.output
    result = runner.invoke(main, ["service", "install", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f"wrote {unit}" in result.output
    assert f"run --config {config}" in result.output
    assert "ran systemctl --user enable --now commsproxy.service  (ok)" in result.output
    result = runner.invoke(main, ["service", "status"])
    assert result.exit_code == 0
    assert "starts at login: yes" in result.output
    assert "running: yes" in result.output
    result = runner.invoke(main, ["service", "uninstall"])
    assert result.exit_code == 0
    assert f"removed {unit}" in result.output
    assert not unit.exists()


def test_install_names_a_missing_config_flag(tmp_path: Path, fake_linux: Recorder) -> None:
    result = CliRunner().invoke(main, ["service", "install", "--config", str(tmp_path / "no")])
    assert result.exit_code == 2
    assert "--config" in result.output


def test_an_unknown_platform_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "commsproxy.cli.service.place", lambda: Place("sunos5", tmp_path, {}, Recorder())
    )
    result = CliRunner().invoke(main, ["service", "install"])
    assert result.exit_code == 1
    assert "no autostart for this platform (sunos5)" in result.output
