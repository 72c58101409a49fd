"""``commsproxy stop-holding`` and ``start-holding``: the switch that stops triage holding mail.

The switch is a small file in the state directory (``holding-stopped``, owner-only, saying
since when), not a row in the state file: ``run`` looks at it before each decision, with or
without a schema of its own, and deleting the state file does not start holding again. While
it is there, triage still decides and tags new mail but holds none of it: everything stays in
INBOX. ``stop_holding`` sets the switch first and then releases every batch of every login
(through ``run`` when it runs, else by itself: ``release_now``), so no message is held after
the release that empties the hold mailboxes. ``start_holding`` removes the switch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import Config
from .release_now import Released, release_now

__all__ = [
    "SWITCH",
    "Stopped",
    "holding_stopped",
    "start_holding",
    "stop_holding",
]

SWITCH = "holding-stopped"


def holding_stopped(state_dir: Path) -> datetime | None:
    """Since when holding is stopped for ``state_dir``, or None while triage holds mail."""
    path = state_dir / SWITCH
    try:
        text = path.read_text(encoding="utf-8").strip()
        return datetime.fromisoformat(text)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        # There but unreadable: the user asked to stop holding, and holding again would
        # surprise them; the file's time says since when.
        try:
            return datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            return None if not path.exists() else datetime.now(UTC)


def _set_switch(state_dir: Path, at: datetime) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / SWITCH
    temporary = path.with_name(path.name + ".new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(at.isoformat() + "\n")
    os.replace(temporary, path)  # whole or not at all


@dataclass(frozen=True)
class Stopped:
    since: datetime  # when holding was stopped (earlier, if it was stopped already)
    already: bool  # it had been stopped before this call
    released: Released


def stop_holding(
    config: Config,
    *,
    state_dir: Path | None = None,
    on_waiting: Callable[[str], None] = lambda who: None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Stopped:
    """Stop holding new mail, then release everything held, every batch of every login.

    Raises ReleaseNowError when the release did not happen; holding stays stopped then, and
    the release request stays queued for ``run``.
    """
    directory = (state_dir or config.proxy.state_dir).expanduser()
    since = holding_stopped(directory)
    already = since is not None
    if since is None:
        since = clock()
        _set_switch(directory, since)
    released = release_now(config, None, None, state_dir=directory, on_waiting=on_waiting)
    return Stopped(since, already, released)


def start_holding(config: Config, *, state_dir: Path | None = None) -> datetime | None:
    """Hold mail again; returns since when holding had been stopped (None: it was not)."""
    directory = (state_dir or config.proxy.state_dir).expanduser()
    since = holding_stopped(directory)
    (directory / SWITCH).unlink(missing_ok=True)
    return since
