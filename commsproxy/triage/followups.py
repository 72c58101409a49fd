"""Waiting for an answer: sent mail that got none comes back to the top of INBOX.

Every message the user sends to someone outside the team is watched, once per Message-ID:
what goes through the SMTP side (``sent``) and what the history finds in Sent from another
device (history_keeper.py hands it on as sent too). followup_match.py decides whether and until
when (``[followup] days`` working days, an account's ``followup_days``, or the message's own
``2d@followup.invalid``), and which new INBOX mail answers it: each decided message is matched
(``decided``, before anything is held, so a reply that waits in a batch still counts; after a
restart the first pass decides what came meanwhile before ``start`` runs). A follow-up due and
unanswered comes back (followup_return.py). The state store keeps them all, for the
``followups`` command, the Today page and the digest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..classifier.mail import Mail
from ..config import local_zone
from .account_match import AccountGuesser, AccountRules
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .followup_match import Watched, plan_followup
from .followup_report import WAITING
from .followup_return import return_followup, sent_mailbox
from .state_store import Decision, FollowUp, StateStore
from .upstream import Upstream

__all__ = ["MAX_AGE", "FollowUps"]

log = logging.getLogger("commsproxy.triage")

# Sent mail older than this when first seen is not watched: a renumbered Sent is read again
# from its newest messages, which must not bring back weeks of old mail.
MAX_AGE = timedelta(days=7)
# A follow-up back in INBOX is still marked answered by a reply this long after it came back.
_RETURNED_ANSWERS = timedelta(days=30)


class FollowUps(EnginePart):
    name = "followups"

    def __init__(
        self, settings: EngineSettings, store: StateStore, zone: ZoneInfo | None = None
    ) -> None:
        super().__init__(settings)
        self.store = store
        self.zone = zone or local_zone()
        self._due: datetime | None = None
        self._due_known = False  # _due is current (False after any change)

    # -- watching ------------------------------------------------------------------------------

    def sent(self, mail: Mail, followup: str | None = None) -> None:
        try:
            self._sent(mail, followup)
        except Exception:  # called from sending and triage: a bug here must stop neither
            log.exception("%s: watching a sent message failed; going on", self)

    def _sent(self, mail: Mail, followup: str | None) -> None:
        s = self.settings
        if not s.followup.enabled or not mail.message_id:
            return
        login = s.login
        if self.store.followup(login, mail.message_id) is not None:
            return  # seen already: through the SMTP side, then in Sent
        now = s.clock()
        sent_at = min(mail.date, now) if mail.date is not None else now
        if sent_at < now - MAX_AGE:
            return
        rules, guesser = self._rules()
        plan = plan_followup(
            mail, sent_at, followup, config=s.followup, accounts=s.accounts, rules=rules,
            own=s.own_addresses, zone=self.zone, morning=s.snooze.morning, guesser=guesser,
        )  # fmt: skip
        if plan.due_at is None:
            if plan.remember:  # so that its copy in Sent is not watched after all
                self._watch(mail, plan.recipients, sent_at, sent_at, "cancelled")
            log.debug("%s: %s not watched: %s", self, mail.message_id, plan.why)
            return
        if self._watch(mail, plan.recipients, sent_at, plan.due_at, "waiting"):
            due = plan.due_at.astimezone(self.zone).strftime("%a %d %b %H:%M")
            log.info("%s: waiting for an answer until %s (%s)", self, due, plan.why)

    def _watch(
        self, mail: Mail, recipients: tuple[str, ...], sent_at: datetime, due: datetime, state: str
    ) -> bool:
        assert mail.message_id is not None
        followup = FollowUp(
            self.settings.login, mail.message_id, recipients, mail.subject[:300], sent_at, due,
            state, sender=mail.sender,
        )  # fmt: skip
        self._due_known = False
        return self.store.watch_followup(followup)

    def _rules(self) -> tuple[AccountRules, AccountGuesser | None]:
        s = self.settings
        if s.filing is not None:
            return s.filing.rules, s.filing.guesser
        return AccountRules(s.accounts, s.own_addresses), None

    # -- answers -------------------------------------------------------------------------------

    def decided(self, mails: Sequence[Mail], decisions: Sequence[Decision]) -> None:
        try:
            self._answers(mails)
        except Exception:  # called inside a triage pass: a bug here must not stop triage
            log.exception("%s: looking for answers failed; going on", self)

    def _answers(self, mails: Sequence[Mail]) -> None:
        s = self.settings
        now = s.clock()
        watched = self.store.followups(s.login, WAITING)
        back = self.store.followups_returned_since(s.login, now - _RETURNED_ANSWERS)
        watched += [f for f in back if f.state == "returned"]
        if not watched:
            return
        rules, _ = self._rules()
        index = Watched(watched, rules, s.own_addresses)
        for mail in mails:
            found = index.answered_by(mail)
            if found is None:
                continue
            index.forget(found)
            if self.store.followup_answered(s.login, found.message_id, mail.sender, now):
                log.info("%s: an answer came to <%s>", self, found.message_id)
                self._due_known = False

    def reconfigured(self, settings: EngineSettings) -> None:
        super().reconfigured(settings)
        self._due_known = False  # [followup] may have been switched on or off

    # -- coming back ---------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        if not self.settings.followup.enabled or self.settings.dry_run:
            return None
        if not self._due_known:
            waiting = self.store.followups(self.settings.login)
            self._due = min((f.due_at for f in waiting), default=None)
            self._due_known = True
        return self._due

    async def start(self, worker: Upstream) -> None:
        """After the session's first pass (answers that came meanwhile are known): what fell
        due while the proxy was down comes back, and an interrupted return is finished."""
        self._due_known = False
        await self.step(worker)

    async def step(self, worker: Upstream) -> None:
        s = self.settings
        due = self.next_due()
        now = s.clock()
        if due is None or due > now:
            return
        sent_in = await sent_mailbox(worker, self.store, s.login)
        sender = next(iter(s.own_addresses), s.login)
        for followup in self.store.followups(s.login):
            if followup.due_at > now and followup.state != "returning":
                continue
            how = await return_followup(
                worker, self.store, followup, sent_in=sent_in, sender=sender, now=now,
                zone=self.zone,
            )  # fmt: skip
            log.info("%s: no answer to <%s>: back in INBOX as %s", self, followup.message_id, how)
        self._due_known = False
