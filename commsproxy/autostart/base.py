"""What every platform's autostart shares: what to start, where files go, how commands run.

The platform modules render their unit, agent or task from a ``Launch`` with pure functions,
and run the platform's own tool (systemctl, launchctl, schtasks) through a ``Runner``, so
tests render and install into a fake home directory with a recording fake instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "NAME",
    "AutostartError",
    "Launch",
    "Outcome",
    "Runner",
    "State",
    "launch_for",
    "run_command",
]

NAME = "commsproxy"

#: Runs one command (argv) and returns its result; never raises for a failing command.
Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class AutostartError(Exception):
    """The service cannot be installed or removed; the message says why and what to do."""


@dataclass(frozen=True)
class Launch:
    """How the service starts commsproxy: ``program`` (absolute), then ``run`` and options."""

    program: tuple[str, ...]  # the executable and any arguments before ``run``
    config: Path | None = None  # absolute; None: the default config file

    @property
    def argv(self) -> tuple[str, ...]:
        rest = ("--config", str(self.config)) if self.config is not None else ()
        return (*self.program, "run", *rest)


@dataclass
class Outcome:
    """What install or uninstall did, in the order it did it, for the user to read."""

    wrote: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)  # each command, and how it ended
    notes: list[str] = field(default_factory=list)  # what the user may still need to do


@dataclass(frozen=True)
class State:
    """Whether the service is installed, enabled (starts at login) and running now."""

    installed: bool
    where: Path
    enabled: bool | None = None  # None: cannot be told here
    running: bool | None = None
    detail: str = ""


def run_command(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """The real runner: the command's output captured, a missing program as exit code 127."""
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)
    except FileNotFoundError:
        return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: not found")
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(list(argv), 124, "", f"{argv[0]}: no answer in 60 s")


def ran(outcome: Outcome, runner: Runner, argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and note it in ``outcome`` with how it ended."""
    result = runner(argv)
    said = (result.stderr or result.stdout).strip().splitlines()
    end = "ok" if result.returncode == 0 else f"exit {result.returncode}"
    if result.returncode != 0 and said:
        end += f": {said[0]}"
    outcome.ran.append(f"{' '.join(argv)}  ({end})")
    return result


def launch_for(
    config: Path | None,
    *,
    argv0: str | None = None,
    executable: str | None = None,
    windows: bool | None = None,
) -> Launch:
    """How to start the commsproxy that is running now, by absolute paths.

    The ``commsproxy`` script when that is what runs; else the interpreter with ``-m
    commsproxy``. On Windows the console-less twins are preferred: ``commsproxyw.exe`` (the
    gui-script beside ``commsproxy.exe``) or ``pythonw.exe``, so no console window shows.
    """
    argv0 = sys.argv[0] if argv0 is None else argv0
    executable = sys.executable if executable is None else executable
    windows = sys.platform == "win32" if windows is None else windows
    script = Path(argv0).absolute()
    stem = script.name.lower().removesuffix(".exe")
    config = config.absolute() if config is not None else None
    if windows:
        for candidate in (script.with_name("commsproxyw.exe"), script.with_name("commsproxyw")):
            if stem == NAME and candidate.exists():
                return Launch((str(candidate),), config)
        interpreter = Path(executable)
        quiet = interpreter.with_name("pythonw.exe")
        chosen = quiet if quiet.exists() else interpreter
        return Launch((str(chosen), "-m", NAME), config)
    if stem == NAME and script.exists():
        return Launch((str(script),), config)
    return Launch((str(Path(executable).absolute()), "-m", NAME), config)


def env_dir(env: Mapping[str, str], name: str, fallback: Path) -> Path:
    """A directory named by an environment variable when set (and absolute), else fallback."""
    value = env.get(name, "")
    return Path(value) if value and os.path.isabs(value) else fallback
