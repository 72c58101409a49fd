"""No double replies in the team: a reply to a thread a colleague has answered since the user's
copy arrived is kept back (``[accounts] collision = "hold"``) or sent with a notice (``"warn"``).

The SMTP side asks before each message goes upstream (``proxy/smtp/outgoing_check.py``).
Only a reply (In-Reply-To, else the last of References) to mail of a customer account is
looked at, and only by looking on the server: the account folder (``account_match.py`` says
which, as for filing) is searched for messages answering the same message, and a reply from a
colleague (not one of the user's addresses; internal, or filed as sent mail, as ``teamhint.py``
decides) filed after the user's copy of that message arrived (the store's decision time for it,
else its INTERNALDATE in INBOX) counts.

The look runs on the login's engine's worker between two steps (``between_steps``), so it costs
no login of its own: a handful of commands on a link that is up. It runs as a task of its own
that the SMTP side's time bound never cuts: a command is never abandoned half way on the
worker's link; a look that comes too late is left to finish and its answer dropped (a reply
kept back in Drafts is then sent too: nothing is lost either way).

"hold": the reply is APPENDed to ``Drafts/Collision`` (``\\Draft \\Seen``) before the client
hears the refusal, and remembered in the store (sender, message answered, recipients), so the
same reply sent again within ten minutes by the engine's clock goes through, also after a
restart. "warn": once the upstream took the reply, a one-line message goes to INBOX, marked
``$Triaged $NotHeld`` so triage leaves it alone.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from ..classifier.mail import Mail, MailParseError, parse_mail
from ..config import local_zone
from ..imap.commands import quote_string
from ..imap.names import INBOX, NOT_HELD, SENT, TRIAGED
from .account_match import AccountRules, resolve_outgoing
from .collision_notice import DRAFTS, WINDOW_MINUTES, Answer, hold_refusal, notice_message
from .engine import Engine
from .filer import accounts_root, search_message_ids
from .hub import TriageHub
from .upstream import Upstream, UpstreamImapError

__all__ = ["CollisionCheck", "Outgoing", "Verdict", "find_answer", "parent_of", "resend_key"]

log = logging.getLogger("commsproxy.collision")

_FIELDS = "(FROM DATE MESSAGE-ID IN-REPLY-TO REFERENCES SUBJECT)"
_INTERNALDATE = "%d-%b-%Y %H:%M:%S %z"


class Outgoing(Protocol):
    """A message about to be relayed, as the SMTP side hands it (proxy/smtp/outgoing_check.py)."""

    @property
    def user(self) -> str | None: ...  # the AUTH user name
    @property
    def mail_from(self) -> str: ...
    @property
    def rcpt_tos(self) -> tuple[str, ...]: ...
    @property
    def head(self) -> bytes: ...  # the header block as it will be sent
    @property
    def content(self) -> Callable[[], bytes]: ...  # the whole message, read when asked


@dataclass(frozen=True)
class Verdict:
    refusal: str | None = None  # an SMTP reply: not sent
    after_sent: Callable[[], Awaitable[None]] | None = None  # once the upstream took it


SEND = Verdict()


def parent_of(mail: Mail) -> str | None:
    """The message a reply answers: its In-Reply-To, else the last of its References."""
    if mail.in_reply_to:
        return mail.in_reply_to[0]
    return mail.references[-1] if mail.references else None


def resend_key(sender: str, parent: str, recipients: Sequence[str]) -> str:
    """What makes "the same reply sent again": sender, message answered, recipients."""
    people = ",".join(sorted({r.strip().lower() for r in recipients}))
    text = f"{sender.strip().lower()}\n{parent.strip()}\n{people}"
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _internaldate(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text.strip(), _INTERNALDATE)
    except ValueError:
        return None


async def find_answer(
    up: Upstream,
    folder: str,
    parent: str,
    own: frozenset[str],
    rules: AccountRules,
    since: datetime | None,
) -> Answer | None:
    """A colleague's reply to ``parent`` in ``folder`` filed after ``since``, the first of them.

    With ``since`` unknown, the filed copy of ``parent`` itself says when it came (when it is
    not there either, any reply counts). Leaves ``folder`` selected read-only (the caller
    selects INBOX again)."""
    if not await up.list_mailboxes(folder):
        return None
    await up.examine(folder)
    wanted = quote_string(parent.strip("<>"))  # HEADER matches substrings: checked below
    uids = await up.search(
        f"OR OR HEADER In-Reply-To {wanted} HEADER References {wanted} HEADER Message-ID {wanted}"
    )
    if not uids:
        return None
    items = f"(UID FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS {_FIELDS}])"
    replies: list[tuple[Mail, datetime | None]] = []
    for fetched in await up.fetch(uids, items):
        try:
            mail = parse_mail(fetched.header)
        except MailParseError:
            continue
        filed = _internaldate(fetched.internaldate)
        if mail.message_id == parent:
            if since is None and filed is not None:
                since = filed
            continue
        if parent not in mail.in_reply_to and parent not in mail.references:
            continue
        sender = mail.sender.lower()
        if not sender or sender in own:
            continue
        if SENT not in fetched.flags and not rules.is_internal(sender):
            continue  # the customer's own mail in the thread, not a colleague's answer
        replies.append((mail, filed))
    found: list[Answer] = []
    for mail, filed in replies:
        # INTERNALDATE has whole seconds: filed in the second the user's copy arrived counts.
        if since is not None and (filed is None or filed + timedelta(seconds=1) <= since):
            continue
        at = mail.date or filed
        if at is not None:
            found.append(Answer(mail.sender_name, mail.sender.lower(), at, mail.subject))
    return min(found, key=lambda answer: answer.at) if found else None


class _Look:
    """One look, run as its own task; ``late`` is set when the SMTP side stopped waiting."""

    def __init__(self) -> None:
        self.late = False


class CollisionCheck:
    """The SMTP side's ``OutgoingCheck`` for every login of the hub."""

    def __init__(self, hub: TriageHub) -> None:
        self.hub = hub
        self._tasks: set[asyncio.Task[Verdict]] = set()
        self._notices: set[asyncio.Task[None]] = set()
        self.looks = 0  # looks on the server, for tests and the log

    async def check(self, message: Outgoing) -> Verdict:
        key = self.hub.login_for(message.user or "")
        engine = self.hub.engines.get(key) if key is not None else None
        if engine is None or not message.head:
            return SEND
        settings = engine.settings
        mode = settings.accounts.collision
        if mode == "off" or settings.filing is None or settings.dry_run:
            return SEND
        try:
            mail = parse_mail(message.head)
        except MailParseError:
            return SEND
        parent = parent_of(mail)
        if parent is None:
            return SEND  # not a reply
        setup = settings.filing
        filing = resolve_outgoing(mail, message.rcpt_tos, setup.rules, setup.guesser)
        if filing is None:
            return SEND  # no customer account: nothing filed to collide with
        resend = resend_key(message.mail_from or mail.sender, parent, message.rcpt_tos)
        now = settings.clock()
        if mode == "hold":
            held = self.hub.store.collision_held_at(settings.login, resend)
            if held is not None and now - held <= timedelta(minutes=WINDOW_MINUTES):
                log.info("collision[%s]: sent again after being kept back: sent", settings.login)
                return SEND
        if not engine.ready:
            log.info("collision[%s]: triage not connected; sent without a look", settings.login)
            return SEND
        own = frozenset(
            a.lower() for a in (*settings.own_addresses, message.mail_from, mail.sender) if a
        )
        look = _Look()
        task = asyncio.create_task(
            self._look(engine, look, message, mail, parent, filing.account, own, resend)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_retrieved)  # a look that ended after the SMTP side gave up
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            look.late = True  # the task goes on to its end; what it finds is dropped
            raise
        except UpstreamImapError as err:
            # The worker's own loop notices a dead link and reconnects.
            log.warning("collision[%s]: the look failed, sent without it: %s", settings.login, err)
            return SEND

    async def _look(
        self,
        engine: Engine,
        look: _Look,
        message: Outgoing,
        mail: Mail,
        parent: str,
        account: str,
        own: frozenset[str],
        resend: str,
    ) -> Verdict:
        settings = engine.settings
        setup = settings.filing
        assert setup is not None
        self.looks += 1
        async with engine.between_steps:
            up = engine.worker
            if up is None or look.late:
                return SEND
            started = asyncio.get_running_loop().time()
            try:
                since = await self._arrived(up, settings.login, parent)
                root = await accounts_root(up, setup.config.root)
                folder = f"{root}{await up.delimiter()}{account}"
                answer = await find_answer(up, folder, parent, own, setup.rules, since)
            finally:
                if up.selected != INBOX:
                    await up.select(INBOX)
            took = asyncio.get_running_loop().time() - started
            log.debug("collision[%s]: looked in %s in %.3f s", settings.login, account, took)
            if answer is None:
                return SEND
            now = settings.clock()
            zone = _zone(engine)
            log.info(
                "collision[%s]: %s answered <%s> already (%s)",
                settings.login, answer.address, parent.strip("<>"), settings.accounts.collision,
            )  # fmt: skip
            if settings.accounts.collision != "hold":
                return Verdict(after_sent=lambda: self._notice_soon(engine, answer, mail.subject))
            if look.late:
                return SEND
            drafts = await up.server_name(DRAFTS)
            await up.ensure_mailbox(drafts)
            await up.append(drafts, message.content(), ("\\Draft", "\\Seen"))
            forget = now - timedelta(days=1)
            self.hub.store.hold_collision(settings.login, resend, now, forget)
            return Verdict(refusal=hold_refusal(answer, now, zone))

    async def _arrived(self, up: Upstream, login: str, parent: str) -> datetime | None:
        """When the user's copy of ``parent`` arrived: the store's decision time, else its
        INTERNALDATE in INBOX (selected); None when neither is known."""
        decision = self.hub.store.latest_decision_by_message_id(login, parent)
        if decision is not None:
            return decision.decided_at
        if up.selected != INBOX:
            await up.select(INBOX)
        uids = await search_message_ids(up, [parent])
        if not uids:
            return None
        moments = [
            _internaldate(f.internaldate) for f in await up.fetch(uids, "(UID INTERNALDATE)")
        ]
        known = [m for m in moments if m is not None]
        return min(known) if known else None

    async def _notice_soon(self, engine: Engine, answer: Answer, subject: str) -> None:
        """ "warn": the notice is appended by a task of its own, between two of the engine's
        steps; the client hears its 250 at once, and no time bound cuts the APPEND."""
        task = asyncio.create_task(self._notice(engine, answer, subject))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)
        task.add_done_callback(_log_failure)

    async def _notice(self, engine: Engine, answer: Answer, subject: str) -> None:
        """ "warn": the one-line message in INBOX, after the reply went out."""
        async with engine.between_steps:
            up = engine.worker
            if up is None:
                log.warning("%s: triage not connected; no notice of the double reply", engine)
                return
            now = engine.settings.clock()
            notice = notice_message(answer, subject, now, _zone(engine))
            await up.append(INBOX, notice, (TRIAGED, NOT_HELD), now)
        engine.wake()  # its EXISTS: counted by the next pass, already decided


def _retrieved(task: asyncio.Task[Verdict]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("collision: a look that came too late failed: %s", task.exception())


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("collision: the notice of a double reply failed: %s", task.exception())


def _zone(engine: Engine) -> ZoneInfo:
    batches = engine.settings.batches
    return batches[0].schedule.zone if batches else local_zone()
