"""``commsproxy stop-holding`` and ``start-holding``: the switch that stops triage holding mail.

The switch is a small file in the state directory (``holding-stopped``, owner-only, saying
since when, and until when if the user chose an end: "focus off until 14:00"), not a row in
the state file: ``run`` looks at it before each decision, with or without a schema of its own,
and deleting the state file does not start holding again. While it is on, triage still decides
and tags new mail but holds none of it: everything stays in INBOX. A switch whose ``until`` has
passed is off by itself, so holding resumes at that time without any process flipping it.
``stop_holding`` sets the switch first and then releases every batch of every login (through
``run`` when it runs, else by itself: ``release_now``), so no message is held after the
release that empties the hold mailboxes. ``start_holding`` removes the switch.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path

from ..config import Config, local_zone
from .release_now import Released, release_now, release_now_async

__all__ = [
    "SWITCH",
    "Stopped",
    "Switch",
    "UntilError",
    "holding_stopped",
    "holding_switch",
    "parse_until",
    "start_holding",
    "stop_holding",
    "stop_holding_async",
]

SWITCH = "holding-stopped"
_UNTIL = "until "


@dataclass(frozen=True)
class Switch:
    """The switch as written: since when, and until when (None: until ``start-holding``)."""

    since: datetime
    until: datetime | None = None

    def on(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def _utcnow() -> datetime:
    return datetime.now(UTC)


def holding_switch(state_dir: Path) -> Switch | None:
    """The switch in ``state_dir`` whether or not its ``until`` has passed; None: no switch."""
    path = state_dir / SWITCH
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
        since = datetime.fromisoformat(lines[0].strip())
        until = None
        for line in lines[1:]:
            if line.startswith(_UNTIL):
                until = datetime.fromisoformat(line[len(_UNTIL) :].strip())
        if since.utcoffset() is None or (until is not None and until.utcoffset() is None):
            raise ValueError("a time without its zone")
        return Switch(since, until)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # There but unreadable: the user asked to stop holding, and holding again would
        # surprise them; the file's time says since when.
        try:
            return Switch(datetime.fromtimestamp(path.stat().st_mtime, UTC))
        except OSError:
            return None if not path.exists() else Switch(_utcnow())


def holding_stopped(state_dir: Path, now: datetime | None = None) -> datetime | None:
    """Since when holding is stopped for ``state_dir``, or None while triage holds mail (also
    once the switch's ``until`` has passed: ``now``, default the current time)."""
    switch = holding_switch(state_dir)
    if switch is None or not switch.on(now or _utcnow()):
        return None
    return switch.since


class UntilError(ValueError):
    """A time for ``--until`` that cannot be read, or that is not in the future."""


def parse_until(text: str, now: datetime, zone: tzinfo | None = None) -> datetime:
    """``HH:MM`` (today in ``zone``, default this machine's, or tomorrow when that has
    passed) or an ISO time (``2026-12-07T14:00``, in ``zone`` unless it names its own)."""
    text = text.strip()
    zone = zone or local_zone()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if match:
        hour, minute = int(match[1]), int(match[2])
        if hour > 23 or minute > 59:
            raise UntilError(f"{text!r}: expected a time of day from 00:00 to 23:59")
        local = now.astimezone(zone)
        at = datetime.combine(local.date(), time(hour, minute), zone)
        if at <= now:
            at = datetime.combine(local.date() + timedelta(days=1), time(hour, minute), zone)
        return at.astimezone(UTC)
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise UntilError(
            f"{text!r}: expected HH:MM (e.g. 14:00) or an ISO time (e.g. 2026-12-07T14:00)"
        ) from None
    if at.utcoffset() is None:
        at = at.replace(tzinfo=zone)
    if at <= now:
        raise UntilError(f"{text!r} has passed already: give a time in the future")
    return at.astimezone(UTC)


def _set_switch(state_dir: Path, at: datetime, until: datetime | None = None) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SWITCH
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(at.isoformat() + "\n")
        if until is not None:
            file.write(_UNTIL + until.isoformat() + "\n")
    os.replace(temporary, path)  # whole or not at all


def _switch_on(directory: Path, until: datetime | None, now: datetime) -> tuple[datetime, bool]:
    """Stop holding (until ``until``); returns since when, and whether it was stopped before.
    A stop that is on already keeps its ``since`` and takes the new ``until``."""
    switch = holding_switch(directory)
    if switch is not None and switch.on(now):
        if switch.until != until:
            _set_switch(directory, switch.since, until)
        return switch.since, True
    _set_switch(directory, now, until)
    return now, False


@dataclass(frozen=True)
class Stopped:
    since: datetime  # when holding was stopped (earlier, if it was stopped already)
    already: bool  # it had been stopped before this call
    released: Released
    until: datetime | None = None  # holding resumes by itself then; None: at start-holding


def stop_holding(
    config: Config,
    *,
    state_dir: Path | None = None,
    on_waiting: Callable[[str], None] = lambda who: None,
    clock: Callable[[], datetime] = _utcnow,
    until: datetime | None = None,
) -> Stopped:
    """Stop holding new mail (until ``until``, None: until ``start_holding``), then release
    everything held, every batch of every login.

    Raises ReleaseNowError when the release did not happen; holding stays stopped then, and
    the release request stays queued for ``run``.
    """
    directory = (state_dir or config.proxy.state_dir).expanduser()
    since, already = _switch_on(directory, until, clock())
    released = release_now(config, None, None, state_dir=directory, on_waiting=on_waiting)
    return Stopped(since, already, released, until)


async def stop_holding_async(
    config: Config,
    *,
    state_dir: Path | None = None,
    on_waiting: Callable[[str], None] = lambda who: None,
    clock: Callable[[], datetime] = _utcnow,
    until: datetime | None = None,
) -> Stopped:
    """``stop_holding`` for an event loop (the local page): waits for ``run`` without
    blocking the loop."""
    directory = (state_dir or config.proxy.state_dir).expanduser()
    since, already = _switch_on(directory, until, clock())
    released = await release_now_async(
        config, None, None, state_dir=directory, on_waiting=on_waiting
    )
    return Stopped(since, already, released, until)


def start_holding(
    config: Config, *, state_dir: Path | None = None, clock: Callable[[], datetime] = _utcnow
) -> datetime | None:
    """Hold mail again; returns since when holding had been stopped (None: it was not, or its
    pause had run out already)."""
    directory = (state_dir or config.proxy.state_dir).expanduser()
    since = holding_stopped(directory, clock())
    (directory / SWITCH).unlink(missing_ok=True)
    return since
