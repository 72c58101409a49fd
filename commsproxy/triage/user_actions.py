"""The user's one-click actions, one implementation for the command line and the local page.

Deliver a held message now, release a batch now, always or never urgent for a sender (or
forget the rule), and pause holding until a chosen time ("focus off") or hold again. Each does
exactly what its CLI command does: ``commsproxy deliver``, ``release --now``, ``urgent
always|never|forget``, ``stop-holding --until``, ``start-holding``.

All are coroutines that never block the loop they run on: inside ``run`` (the local page) a
deliver or release is a request queued in the state store that ``run``'s own hub serves while
this awaits it; from the command line without ``run`` the work is done here over the login's
own connection. A sender rule is an edit of the config file (sender_rules.py) done in a thread;
``run`` picks it up through its config watch (``config_saved`` lets it look at once).
Bad input or an action that is not possible raises ActionError, whose message says why, and
changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..config import Config, local_zone
from ..sender_rules import RuleChange, SenderRuleError, Want, change_sender_rule
from .deliver_now import DeliverNowError, deliver_now
from .holding import holding_stopped, start_holding, stop_holding_async
from .release_now import ReleaseNowError, release_now_async
from .status_report import login_keys

__all__ = ["ActionError", "Done", "UserActions"]


class ActionError(Exception):
    """Bad input, or the action is not possible; the message says why."""


@dataclass(frozen=True)
class Done:
    message: str  # what happened, in words, for the CLI and the page's #flash


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")


class UserActions:
    def __init__(
        self,
        config: Config,
        *,
        state_dir: Path | None = None,
        clock: Callable[[], datetime] = _utcnow,
        config_saved: Callable[[], None] | None = None,
        on_waiting: Callable[[str], None] = lambda who: None,
    ) -> None:
        self.config = config
        self.state_dir = (state_dir or config.proxy.state_dir).expanduser()
        self.clock = clock
        self._config_saved = config_saved  # e.g. the running service's ConfigWatch.poke
        self._on_waiting = on_waiting  # hears "commsproxy run (pid N)" before a wait

    # -- held mail ---------------------------------------------------------------------------

    async def deliver(self, login: str | None, message_id: str) -> Done:
        """The held message ``message_id`` to INBOX now, learnt as "should have come at once"."""
        try:
            done = await deliver_now(
                self.config, login or None, message_id, state_dir=self.state_dir,
                on_waiting=self._on_waiting, clock=self.clock,
            )  # fmt: skip
        except DeliverNowError as err:
            raise ActionError(str(err)) from None
        if done.subject:
            # Say which mail in the words the user knows it by; the Message-ID only says it
            # when there is nothing else to say.
            what = f"\u201c{done.subject}\u201d from {done.sender or 'an unknown sender'}"
            return Done(f"{what} is in your INBOX now; recorded as urgent for training")
        return Done(done.detail + "; recorded as urgent for training")

    async def release(self, login: str | None, batch: str | None) -> Done:
        """Release ``batch`` (None: every batch) of ``login`` (None: every login) now."""
        login, batch = login or None, batch or None
        names = [b.name for b in self.config.batches]
        if batch is not None and batch not in names:
            raise ActionError(f"no batch {batch!r} (batches: {', '.join(names) or 'none'})")
        keys = login_keys(self.config)
        if login is not None and login not in keys:
            raise ActionError(f"no [[login]] with username {login!r} (logins: {', '.join(keys)})")
        try:
            done = await release_now_async(
                self.config, login, batch, state_dir=self.state_dir,
                on_waiting=self._on_waiting, clock=self.clock,
            )  # fmt: skip
        except ReleaseNowError as err:
            raise ActionError(str(err)) from None
        moved = sum(done.released.values())
        which = batch or "every batch"
        return Done(f"released {moved} message{'' if moved == 1 else 's'} from {which} to INBOX")

    # -- sender rules --------------------------------------------------------------------------

    async def always_urgent(self, pattern: str) -> Done:
        """Mail from ``pattern`` (an address or ``*@domain``) is urgent from now on."""
        return await self._rule(pattern, "always")

    async def never_urgent(self, pattern: str) -> Done:
        """Mail from ``pattern`` is never urgent from now on (held as normal or bulk)."""
        return await self._rule(pattern, "never")

    async def forget_sender(self, pattern: str) -> Done:
        """No rule for ``pattern`` any more: the model decides."""
        return await self._rule(pattern, "forget")

    async def _rule(self, pattern: str, want: Want) -> Done:
        path = self.config.path
        if path is None:
            raise ActionError(
                "commsproxy runs on built-in defaults, with no config file to keep the rule "
                "in: write one with `commsproxy init`"
            )
        try:
            change: RuleChange = await asyncio.to_thread(change_sender_rule, path, pattern, want)
        except SenderRuleError as err:
            raise ActionError(str(err)) from None
        if change.changed and self._config_saved is not None:
            self._config_saved()
        return Done(change.words())

    # -- holding -------------------------------------------------------------------------------

    async def focus_off(self, until: datetime) -> Done:
        """Hold nothing until ``until`` (then holding resumes by itself); release what is held."""
        now = self.clock()
        if until.utcoffset() is None:
            raise ActionError(f"{until.isoformat()}: a time needs its time zone")
        if until <= now:
            raise ActionError(f"{_when(until)} has passed already: give a time in the future")
        try:
            stopped = await stop_holding_async(
                self.config, state_dir=self.state_dir, on_waiting=self._on_waiting,
                clock=self.clock, until=until,
            )  # fmt: skip
        except ReleaseNowError as err:
            raise ActionError(
                f"holding is paused until {_when(until)}, but the held mail is not released "
                f"yet: {err}"
            ) from None
        moved = sum(stopped.released.released.values())
        return Done(
            f"holding paused until {_when(until)}: new mail arrives at once; released "
            f"{moved} held message{'' if moved == 1 else 's'}"
        )

    async def focus_on(self) -> Done:
        """Hold mail that can wait in batches again."""
        paused = holding_stopped(self.state_dir, self.clock())
        await asyncio.to_thread(
            start_holding, self.config, state_dir=self.state_dir, clock=self.clock
        )
        if paused is None:
            return Done("holding was on already: mail that can wait goes to its batch")
        return Done("holding again: new mail that can wait goes to its batch")
