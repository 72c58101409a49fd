"""Auto-replies to held mail (``[autoreply] enabled = true``): when it will be read, and how to
reach the user when it cannot wait.

An engine part (engine_part.py). ``decided`` picks, from the mail triage has just decided to
hold, the messages that get a reply (autoreply_rules.py: people outside the team who wrote to
the user, never lists, machines, bulk, urgent mail, colleagues or the user) and queues one reply
per recipient per day in the user's zone (the zone of the batch that holds the mail) in the
state store; a second message from the same person that day finds the day taken. ``step``
sends what is due, a few per step over one SMTP connection (the login's own server, logged in
as the login: autoreply_send.py), so a burst of held mail never stalls triage.

Each reply is written to the store before anything is sent, and marked "sending" before each
try: a crash during a try leaves it "unsure" at the next start and it is not sent again (a
person gets at most one reply a day, never two). A failed try is retried a few times with a
pause, then given up and logged once. A reply that can no longer be sent before its release
(the mail is read by then) is dropped as "late". A dry run sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

import aiosmtplib

from ..classifier.mail import Mail
from ..config import BatchConfig
from ..oauth import OAuthError
from .autoreply_rules import reply_address, why_not
from .autoreply_send import PasswordLogin, SmtpRefused, TokenLogin, smtp_link
from .autoreply_text import REFERENCES_KEPT, reply_message, reply_text, urgent_hint
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .scheduler import next_release, release_time
from .signin import TokenCredentials
from .state_store import AutoReply, Decision, StateStore
from .upstream import Upstream

__all__ = ["AutoReplies", "give_credentials"]

log = logging.getLogger("commsproxy.triage")

#: Replies sent per engine step: a burst of held mail from many senders is sent over several
#: steps, each short, so triage goes on in between.
PER_STEP = 5
#: Tries of one reply before it is given up, and the pause after each failed one.
TRIES = 3
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=10))
#: Seconds for each SMTP exchange (connect, login, one message).
SMTP_TIMEOUT = 20.0
_NO_SMTP = "auto-replies are on but this login has no upstream_smtp: none are sent"
# What new_mail.py adds to the reason of mail left in INBOX because it was read already.
_READ = "(already read"
#: Seconds to wait for the login's password (it is there while the engine is connected).
_CREDENTIALS_WAIT = 5.0


class _Credentials(Protocol):
    """The engine's credentials (engine.Credentials): (user, password) or a way to connect."""

    async def __call__(self) -> object: ...


def give_credentials(parts: Sequence[EnginePart], credentials: _Credentials) -> None:
    """Hand the login's credentials (the engine's own) to the parts that send mail."""
    for part in parts:
        if isinstance(part, AutoReplies):
            part.credentials = credentials


class AutoReplies(EnginePart):
    name = "autoreply"

    def __init__(self, settings: EngineSettings, store: StateStore) -> None:
        super().__init__(settings)
        self.store = store
        self.credentials: _Credentials | None = None
        self._next: datetime | None = None  # the earliest queued reply's next try
        self._said: str | None = None  # the last trouble logged, so each is logged once

    # -- the hooks ---------------------------------------------------------------------------

    async def start(self, worker: Upstream) -> None:
        """Replies a crash interrupted mid-try may have gone out: never sent again."""
        now = self.settings.clock()
        for reply in self.store.autoreplies(self.settings.login, "sending"):
            self.store.set_autoreply(reply.id, "unsure", now, reply.tries, now)
            log.warning(
                "%s: the auto-reply to %s was being sent when commsproxy stopped; it may have"
                " gone out, so it is not sent again", self, reply.recipient,
            )  # fmt: skip
        s = self.settings
        if s.autoreply.enabled and not s.own_addresses:
            self._say("noaddress", "auto-replies are on but this login's address is not known:"
                      " make [[login]] username your address, or set [accounts]"
                      " internal_domains")  # fmt: skip
        elif s.autoreply.enabled and s.smtp is None and not s.dry_run:
            self._say("nosmtp", _NO_SMTP)
        self._refresh()

    def next_due(self) -> datetime | None:
        return self._next if self._active() else None

    def decided(self, mails: Sequence[Mail], decisions: Sequence[Decision]) -> None:
        if not self.settings.autoreply.enabled:
            return
        try:
            self._decided(mails, decisions)
        except Exception:
            # Called in the middle of a triage pass: a fault here must not stop triage.
            log.exception("%s: choosing auto-replies failed; going on", self)

    def _decided(self, mails: Sequence[Mail], decisions: Sequence[Decision]) -> None:
        s = self.settings
        sla: dict[str, datetime] | None = None  # Message-ID -> its account's sla, read once
        for mail, decision in zip(mails, decisions, strict=True):
            if s.dry_run and decision.batch is not None and _READ not in decision.reason:
                decision = replace(decision, held=True)  # what a run would hold
            reason = why_not(mail, decision, s.own_addresses, s.accounts.internal_domains)
            batch = next((b for b in s.batches if b.name == decision.batch), None)
            if reason is None and batch is None:
                reason = "no batch holds it"
            if reason is not None:
                log.debug("%s: uid %d: no auto-reply: %s", self, decision.uid, reason)
                continue
            assert batch is not None
            if sla is None:
                sla = self._sla_due()
            self._queue(mail, decision, batch, sla.get((decision.message_id or "").strip("<>")))
        self._refresh()

    def _sla_due(self) -> dict[str, datetime]:
        """When held mail of an account with an sla comes at the latest (sla.py, which heard
        of the decisions first), by Message-ID without <>."""
        if not any(a.sla is not None for a in self.settings.accounts.accounts):
            return {}
        return {e.message_id: e.due for e in self.store.sla_pending(self.settings.login)}

    async def step(self, worker: Upstream) -> None:
        if not self._active():
            return
        now = self.settings.clock()
        due = self.store.autoreplies(self.settings.login, "queued", before=now, limit=PER_STEP)
        late = [r for r in due if r.release <= now]
        for reply in late:
            self.store.set_autoreply(reply.id, "late", now, reply.tries, now)
            log.info("%s: auto-reply to %s dropped: its mail is read by now", self, reply.recipient)
        due = [r for r in due if r.release > now]
        if due:
            await self._send(due, now)
        self._refresh()

    # -- queueing ----------------------------------------------------------------------------

    def _active(self) -> bool:
        s = self.settings
        return s.autoreply.enabled and not s.dry_run and s.smtp is not None

    def _queue(
        self, mail: Mail, decision: Decision, batch: BatchConfig, sla: datetime | None
    ) -> None:
        s = self.settings
        if s.dry_run:
            log.info("%s: uid %d (dry run: would auto-reply to %s)", self, decision.uid,
                     reply_address(mail))  # fmt: skip
            return
        if s.smtp is None:
            self._say("nosmtp", _NO_SMTP)
            return
        now = s.clock()
        zone = batch.schedule.zone
        recipient = reply_address(mail)
        # A release inside a quiet batch's window happens at the window's end; an account's
        # sla may bring the mail sooner.
        release = release_time(batch, s.batches, next_release(batch.schedule, now), now)
        if sla is not None and now < sla < release:
            release = sla
        reply = AutoReply(
            login=s.login,
            recipient=recipient,
            day=now.astimezone(zone).date().isoformat(),
            message_id=mail.message_id,
            references=mail.references[-REFERENCES_KEPT:],
            subject=mail.subject[:300],
            batch=batch.name,
            release=release,
            queued_at=now,
        )
        if not self.store.queue_autoreply(reply):
            log.debug("%s: uid %d: %s has had an auto-reply today", self, decision.uid, recipient)

    def _refresh(self) -> None:
        queued = self.store.autoreplies(self.settings.login, "queued", limit=1)
        self._next = queued[0].next_try if queued else None

    # -- sending -----------------------------------------------------------------------------

    async def _send(self, due: list[AutoReply], now: datetime) -> None:
        s = self.settings
        assert s.smtp is not None
        sender = s.own_addresses[0] if s.own_addresses else ""
        left = {reply.id: reply for reply in due}  # not sent, not given up: tried again
        tried: set[int] = set()
        try:
            login = await self._login()
            if login is None:
                raise SmtpRefused("log in", 454, "no credentials yet (waiting for a login)")
            async with smtp_link(s.smtp, s.tls, login, SMTP_TIMEOUT) as link:
                for reply in due:
                    tried.add(reply.id)
                    tries = reply.tries + 1
                    self.store.set_autoreply(reply.id, "sending", now, tries, now)
                    try:
                        await link.send(sender, reply.recipient, self._content(reply, sender))
                    except SmtpRefused as err:
                        del left[reply.id]
                        self._failed(reply, tries, str(err), give_up=err.permanent)
                        continue
                    del left[reply.id]
                    self.store.set_autoreply(reply.id, "sent", s.clock(), tries, now)
                    log.info(
                        "%s: auto-reply sent to %s (their mail waits in %s)",
                        self, reply.recipient, reply.batch,
                    )  # fmt: skip
            if self._said is not None:
                log.info("%s: sending auto-replies works again", self)
            self._said = None
        except (SmtpRefused, aiosmtplib.SMTPException, OSError, OAuthError) as err:
            # The server could not be reached, refused the login or broke off: each reply of
            # this step still left counts a try (no 250 came, so none went out).
            self._say(type(err).__name__, f"cannot send auto-replies via {s.smtp}: {err}")
            for reply in left.values():
                self._failed(reply, reply.tries + 1, str(err))

    def _failed(self, reply: AutoReply, tries: int, error: str, give_up: bool = False) -> None:
        now = self.settings.clock()
        if give_up or tries >= TRIES:
            self.store.set_autoreply(reply.id, "failed", now, tries, now)
            log.warning("%s: auto-reply to %s given up after %d tr%s: %s", self,
                        reply.recipient, tries, "y" if tries == 1 else "ies", error)  # fmt: skip
            return
        pause = RETRY_AFTER[min(tries, len(RETRY_AFTER)) - 1]
        self.store.set_autoreply(reply.id, "queued", now, tries, now + pause)

    async def _login(self) -> PasswordLogin | TokenLogin | None:
        credentials = self.credentials
        if credentials is None:
            return None
        if isinstance(credentials, TokenCredentials):
            return TokenLogin(credentials.tokens, credentials.mailbox)
        try:
            got = await asyncio.wait_for(credentials(), _CREDENTIALS_WAIT)
        except TimeoutError:
            return None
        if isinstance(got, tuple) and len(got) == 2:
            return PasswordLogin(str(got[0]), str(got[1]))
        return None

    def _content(self, reply: AutoReply, sender: str) -> bytes:
        s = self.settings
        batch = next((b for b in s.batches if b.name == reply.batch), None)
        now = s.clock()
        zone = batch.schedule.zone if batch is not None else ZoneInfo("UTC")  # batch gone
        local = reply.release.astimezone(zone)
        times = batch.schedule.times_on(local.weekday()) if batch is not None else ()
        text = reply_text(
            s.autoreply,
            release=reply.release,
            now=now,
            zone=zone,
            times=times or (local.time(),),
            urgent=urgent_hint(s.autoreply, sender, s.triage.urgent_tag),
        )
        message = reply_message(
            sender=sender,
            recipient=reply.recipient,
            subject=reply.subject,
            message_id=reply.message_id,
            references=reply.references,
            text=text,
            now=now,
        )
        return bytes(message)

    def _say(self, what: str, line: str) -> None:
        if self._said != what:
            self._said = what
            log.warning("%s: %s", self, line)
