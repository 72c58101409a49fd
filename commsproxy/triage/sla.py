"""An account's sla: its mail is held at most that long (``[accounts.KEY] sla = "1h"``).

When new mail is decided, each held message that belongs to an account with an sla (the same
resolution filing uses, account_match.py) gets a due time -- the decision's time plus the sla --
in the state store, before the mail moves. At that time, if the message is still in its hold
mailbox, it goes to INBOX the way ``commsproxy deliver`` takes it there (deliver_now.py:
``$Released``, then moved, or re-appended for a ``reappend`` batch); it is no correction, so
nothing is recorded for training. A release of its batch that came first settles it, and so
does a message no longer held (the user took it). Only the clock counts: quiet hours do not
delay an sla.

Crash safety: the limit is marked ``delivering`` before the message is marked and moved; a
redo finds it still held (and moves it), or its copy's original deleted (and expunges exactly
that), or nothing left to do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from ..classifier.mail import Mail
from ..config import AccountConfig
from ..imap.names import INBOX
from .account_match import AccountRules, resolve_incoming
from .deliver_now import NotHeld, bring_back, held_here
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .refusal_waits import RefusalWaits
from .state_store import Decision, SlaDue, StateStore
from .upstream import CommandRefused, Upstream

__all__ = ["SlaLimits", "sla_words"]

log = logging.getLogger("commsproxy.triage")

_RETRY = 60.0  # seconds before a delivery the server refused is tried again


def sla_words(minutes: int) -> str:
    """An sla as the config writes it: "1h", "90m" -> "1h30m", "45m"."""
    hours, rest = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{rest}m" if rest or not hours else "")


class SlaLimits(EnginePart):
    name = "sla"

    def __init__(self, settings: EngineSettings, store: StateStore) -> None:
        super().__init__(settings)
        self.store = store
        self.stepped: datetime | None = None  # the clock as the last finished step began
        self._retry = RefusalWaits(_RETRY)  # deliveries the server refused

    def _limited(self) -> dict[str, AccountConfig]:
        """Accounts with an sla, by folder name (what account matching answers)."""
        return {a.name: a for a in self.settings.accounts.accounts if a.sla is not None}

    def decided(self, mails: Sequence[Mail], decisions: Sequence[Decision]) -> None:
        limited = self._limited()
        if not limited:
            return
        held = [
            (mail, decision)
            for mail, decision in zip(mails, decisions, strict=True)
            if decision.held and decision.batch and decision.message_id
        ]
        if not held:
            return
        s = self.settings
        if s.filing is not None:
            rules, guesser = s.filing.rules, s.filing.guesser
        else:
            rules, guesser = AccountRules(s.accounts, s.own_addresses), None
        filings = resolve_incoming([mail for mail, _ in held], rules, guesser)
        entries: list[SlaDue] = []
        for (_, decision), filing in zip(held, filings, strict=True):
            account = limited.get(filing.account) if filing is not None else None
            if account is None or account.sla is None or decision.batch is None:
                continue
            minutes = account.sla.minutes
            entries.append(
                SlaDue(
                    login=s.login,
                    message_id=(decision.message_id or "").strip().strip("<>"),
                    batch=decision.batch,
                    account=account.name,
                    sla=sla_words(minutes),
                    decided_at=decision.decided_at,
                    due=decision.decided_at + timedelta(minutes=minutes),
                )
            )
        if entries:
            self.store.note_sla(entries)

    def next_due(self) -> datetime | None:
        pending = self.store.sla_pending(self.settings.login)
        return self._retry.next_try(((x.id, x.due) for x in pending), self.settings.clock())

    async def step(self, worker: Upstream) -> None:
        if self.settings.dry_run:
            return
        now = self.settings.clock()
        try:
            for limit in self.store.sla_pending(self.settings.login):
                if limit.due > now:
                    break
                if self._retry.waiting(limit.id):
                    continue
                try:
                    await self._settle(worker, limit)
                except CommandRefused as err:  # the server refuses a step: a minute later
                    self._retry.refused(limit.id)
                    log.warning("%s: <%s> could not be delivered at its sla yet: %s", self,
                                limit.message_id, err)  # fmt: skip
                else:
                    self._retry.done(limit.id)
        finally:
            if worker.selected != INBOX and not worker.closed:
                await worker.select(INBOX)  # the engine's worker keeps INBOX selected
        self.stepped = now

    async def _settle(self, worker: Upstream, limit: SlaDue) -> None:
        now = self.settings.clock()
        login = self.settings.login
        delivering = limit.state == "delivering"
        release = self.store.last_release(login, limit.batch)
        released = (
            release is not None
            and release.finished is not None
            and release.started > limit.decided_at  # it found the message held
        )
        if released and not delivering:
            self.store.set_sla_state(limit.id, "released", now)
            return
        batch = next((b for b in self.settings.batches if b.name == limit.batch), None)
        mailbox = await worker.server_name(batch.mailbox) if batch is not None else None
        live: list[int] = []
        left: list[int] = []
        if mailbox is not None and await worker.list_mailboxes(mailbox):
            await worker.select(mailbox)
            live, left = await held_here(worker, limit.message_id)
            left = left if delivering else []  # only the copies this limit appended
        if batch is None or mailbox is None or not (live or left):
            # The batch came first, the user took it, or a cut try had finished the work.
            self.store.set_sla_state(limit.id, "delivered" if delivering else "gone", now)
            return
        if not delivering:
            self.store.set_sla_state(limit.id, "delivering", now)
        try:
            await bring_back(
                worker, mailbox, live, left, limit.message_id, self.settings.clock,
                batch.reappend,
            )  # fmt: skip
        except NotHeld:
            self.store.set_sla_state(limit.id, "gone", self.settings.clock())
            return
        self.store.set_sla_state(limit.id, "delivered", self.settings.clock())
        log.info(
            "%s: <%s> (account %s) delivered at its %s sla from %s",
            self, limit.message_id, limit.account, limit.sla, mailbox,
        )  # fmt: skip
