"""Releasing a batch: everything in its hold mailbox back to INBOX, marked ``$Released``.

Order, for crash safety: the release is logged as started in the store, the messages get
``$Released`` (so they are never triaged again, wherever they end up), then they move. A release
the store still shows as unfinished is carried out again on the next start; since released mail
is only ever moved, doing it twice moves nothing twice. With ``reappend`` each message is
appended to INBOX with a fresh arrival date and the original is then expunged by UID; a redo
first looks for the appended copy, so an interruption between the two steps makes no duplicate.

A digest message (one per release, when there is something to say; digest.py) lists the
batch, likely mistakes first, with each message's reason in plain words, so the user sees why
mail waited and what perhaps should not have. It is appended unread and dated at the release,
before the mail moves, under a Message-ID made from the release, so that a redo after a cut
(the mail may have moved already) neither loses the digest nor writes it twice.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime

from ..classifier.mail import Mail, MailParseError, parse_mail
from ..config import BatchConfig, Config, TriageConfig
from ..imap.commands import quote_string
from ..imap.names import DIGEST, INBOX, RELEASED, TRIAGED, URGENT
from ..imap.responses import Fetched
from .account_match import AccountGuesser, AccountRules, resolve_incoming
from .digest import Digest, DigestItem, arrange, digest_message
from .digest_order import (
    Ordering,
    Rank,
    SenderHistory,
    likely_mistake,
    rank_of,
    wording_counts,
)
from .fetched_mail import mail_of
from .filer import FilingSetup
from .followup_digest import with_followups
from .plain_reasons import plain_reason
from .state_store import Decision, StateStore
from .upstream import Upstream

__all__ = [
    "DigestLink",
    "ReleaseError",
    "Releaser",
    "kept_flags",
    "reappend",
    "release_without_run",
]

log = logging.getLogger("commsproxy.triage")

# The digest is unread: it is news, and a client shows it as such.
_DIGEST_KEYWORDS = (RELEASED, TRIAGED, DIGEST)
# Bytes of a message's body read for the digest (after its header): where it says it is urgent.
_BODY_PEEK = 8192
# Messages whose body is read for the digest at most (the newest): a bounded read per release.
_WORDING_READ = 500

_MOVED_BY_YOU = "it came at once, and you moved it here to wait"

DigestLink = Callable[[str], str | None]  # sender address -> the page's "always urgent" link


class Releaser:
    def __init__(
        self,
        worker: Upstream,
        store: StateStore,
        login: str,
        hold_names: Mapping[str, str],
        triage: TriageConfig,
        clock: Callable[[], datetime],
        *,
        history: SenderHistory | None = None,
        filing: FilingSetup | None = None,
        digest_link: DigestLink | None = None,
    ) -> None:
        self.worker = worker
        self.store = store
        self.login = login
        self.hold_names = hold_names
        self.triage = triage
        self.clock = clock
        self.history = history  # the user's history with senders: who is answered quickly
        self.filing = filing  # the customer accounts, for grouping; None: none configured
        self.digest_link = digest_link
        self.batches: dict[str, BatchConfig] = {}
        self.left_behind: dict[str, str] = {}  # batch name -> a hold mailbox no batch uses now

    def adopt(self, batch: BatchConfig, mailbox: str) -> None:
        """Release ``mailbox`` (a server name) as ``batch``: a hold mailbox the config no
        longer names, so that its release, and the redo of one cut short, find it."""
        self.batches[batch.name] = batch
        self.left_behind[batch.name] = mailbox

    async def resume_unfinished(self, batches: Sequence[BatchConfig] = ()) -> None:
        """Carry out releases a crash interrupted (the store says started, not finished)."""
        known = {b.name: b for b in batches} | self.batches
        for release in self.store.unfinished_releases(self.login):
            batch = known.get(release.batch)
            known_mailbox = release.batch in self.hold_names or release.batch in self.left_behind
            if batch is None or not known_mailbox:
                self.store.finish_release(release.id, 0, self.clock())
                continue
            log.info("triage[%s]: finishing the interrupted release of %s", self.login, batch.name)
            digest_id = self._digest_id(batch, release.id, release.started)
            moved = await self._move_back(batch, digest_id, redo=True)
            self.store.finish_release(release.id, moved, self.clock())

    async def release(self, batch: BatchConfig, *, scheduled: datetime | None) -> int:
        """Release ``batch`` now; returns how many messages went back to INBOX."""
        self.batches[batch.name] = batch
        started = self.clock()
        release_id = self.store.start_release(self.login, batch.name, scheduled, started)
        digest_id = self._digest_id(batch, release_id, started)
        moved = await self._move_back(batch, digest_id, redo=False)
        self.store.finish_release(release_id, moved, self.clock())
        when = "manual" if scheduled is None else f"scheduled {scheduled.isoformat()}"
        log.info(
            "triage[%s]: released %d message(s) from %s (%s)", self.login, moved, batch.name, when
        )
        return moved

    def _digest_id(self, batch: BatchConfig, release_id: int, started: datetime) -> str:
        """The digest's Message-ID: the same for a release and its redo, new for each release."""
        key = f"{self.login}\0{batch.name}\0{release_id}\0{started.isoformat()}"
        return f"<digest-{hashlib.sha256(key.encode()).hexdigest()[:24]}@commsproxy.localhost>"

    async def _move_back(self, batch: BatchConfig, digest_id: str, *, redo: bool) -> int:
        mailbox = self.left_behind.get(batch.name) or self.hold_names[batch.name]
        if not await self.worker.list_mailboxes(mailbox):
            return 0  # never created (a dry run, or no run yet): nothing is held there
        await self.worker.select(mailbox)
        if redo and batch.reappend:
            # Originals marked deleted were appended to INBOX already: only expunge them.
            done = await self.worker.search(f"DELETED KEYWORD {RELEASED}")
            if done:
                await self.worker.expunge_uids(done)
        # A mailbox no batch names any more may be an ordinary folder the config pointed at
        # for a while: only commsproxy's own holds leave it, never the user's own mail.
        mine = f" KEYWORD {TRIAGED}" if batch.name in self.left_behind else ""
        uids = await self.worker.search("UNDELETED" + mine)
        if not uids:
            return 0
        digest = self.triage.digest if batch.digest is None else batch.digest
        if digest:
            by_id = f"HEADER Message-ID {quote_string(digest_id)}"
            if not (redo and (await self._in_inbox([by_id], mailbox))[0]):
                await self._append_digest(batch, uids, digest_id, self.clock())
        await self.worker.add_flags(uids, [RELEASED])
        if batch.reappend:
            await self._reappend(uids, mailbox, redo=redo)
        else:
            await self.worker.move(uids, INBOX)
        return len(uids)

    async def _in_inbox(self, criteria: Sequence[str], mailbox: str) -> list[bool]:
        """Whether INBOX holds a match for each SEARCH criterion; ``mailbox`` selected after."""
        await self.worker.select(INBOX)
        found = [bool(await self.worker.search(criterion)) for criterion in criteria]
        await self.worker.select(mailbox)
        return found

    async def _reappend(self, uids: list[int], mailbox: str, *, redo: bool) -> None:
        """Append fresh copies (new arrival date), then expunge exactly the originals."""
        for start in range(0, len(uids), 50):
            chunk = uids[start : start + 50]
            whole = await self.worker.fetch(chunk, "(UID FLAGS BODY.PEEK[])")
            copied = await self._already_in_inbox(whole, mailbox) if redo else set()
            await reappend(self.worker, mailbox, whole, kept_flags, self.clock, copied)

    async def _already_in_inbox(self, messages: Sequence[Fetched], mailbox: str) -> set[int]:
        """UIDs (in ``mailbox``) whose released copy an interrupted release already appended."""
        ids: dict[str, int] = {}
        for message in messages:
            try:
                mid = parse_mail(message.text[:65536]).message_id
            except MailParseError:
                mid = None
            if mid:
                ids[mid] = message.uid
        criteria = [f"KEYWORD {RELEASED} HEADER Message-ID {quote_string(mid)}" for mid in ids]
        present = await self._in_inbox(criteria, mailbox)
        return {uid for uid, there in zip(ids.values(), present, strict=True) if there}

    async def _append_digest(
        self, batch: BatchConfig, uids: Sequence[int], message_id: str, now: datetime
    ) -> None:
        """The digest (digest.py) of the messages ``uids`` in the selected hold mailbox.

        Headers of all; the start of the body (read with PEEK: nothing is marked read) only of
        the newest ``_WORDING_READ`` whose words can make them a likely mistake, so a batch of
        any size costs a bounded read.
        """
        fetched = await self.worker.fetch(uids, "(UID INTERNALDATE BODY.PEEK[HEADER])")
        mails = {f.uid: mail_of(f) for f in fetched}
        arrived = {f.uid: _arrival(f) or mails[f.uid].date for f in fetched}
        decisions = {uid: self._decision(mail) for uid, mail in mails.items()}
        labels = {uid: d.label if d else None for uid, d in decisions.items()}
        wordy = [
            uid
            for uid, mail in mails.items()
            if labels[uid] != URGENT and wording_counts(mail, self.history, labels[uid])
        ]
        wordy.sort(key=lambda uid: Ordering(Rank.OTHER, arrived[uid]).key())
        read = set(wordy[:_WORDING_READ])
        if read:
            items = f"(UID RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{_BODY_PEEK}>)"
            for f in await self.worker.fetch(sorted(read), items):
                mails[f.uid] = mail_of(f)
        try:
            digest = self._digest(batch, mails, arrived, decisions, read)
            digest = with_followups(digest, self.store, self.login, batch, now)
            message = digest_message(self.login, digest, now, message_id)
        except Exception:
            # A bug in the digest must not keep the batch held: the mail goes back without it.
            log.exception("triage[%s]: the digest of %s failed; releasing without", self.login,
                          batch.name)  # fmt: skip
            return
        # Unread (no \Seen) and dated at the release: it sits on top of a sorted INBOX.
        await self.worker.append(INBOX, message, _DIGEST_KEYWORDS, now)

    def _decision(self, mail: Mail) -> Decision | None:
        if not mail.message_id:
            return None
        return self.store.latest_decision_by_message_id(self.login, mail.message_id)

    def _digest(
        self,
        batch: BatchConfig,
        mails: Mapping[int, Mail],
        arrived: Mapping[int, datetime | None],
        decisions: Mapping[int, Decision | None],
        read: set[int],
    ) -> Digest:
        uids = list(mails)
        accounts: list[str | None] = [None] * len(uids)
        if self.filing is not None:
            filings = resolve_incoming([mails[uid] for uid in uids], *self._matching())
            accounts = [filing.account if filing else None for filing in filings]
        items: list[DigestItem] = []
        for uid, account in zip(uids, accounts, strict=True):
            mail, decision = mails[uid], decisions[uid]
            label = decision.label if decision else None
            mistake: tuple[str, ...] = ()
            if label == URGENT:  # delivered at once, then the user moved it here: their call
                reason = _MOVED_BY_YOU
            else:
                reason = plain_reason(decision.reason if decision else "moved here by hand")
                mistake = likely_mistake(mail, self.history, label, wording=uid in read)
            rank = rank_of(mail, label, account, mistake, self.history)
            link = self.digest_link(mail.sender) if self.digest_link and mail.sender else None
            items.append(
                DigestItem(
                    sender=mail.sender,
                    sender_name=mail.sender_name,
                    subject=mail.subject,
                    account=account,
                    reason=reason,
                    mistake=mistake,
                    order=Ordering(rank, arrived[uid]),
                    link=link,
                )
            )
        return arrange(items, batch.name, grouped=self.filing is not None)

    def _matching(self) -> tuple[AccountRules, AccountGuesser | None]:
        assert self.filing is not None
        return self.filing.rules, self.filing.guesser


def kept_flags(message: Fetched) -> list[str]:
    """A message's flags for its copy: all but the session's ``\\Recent`` and ``\\Deleted``."""
    return [f for f in message.flags if f.lower() not in ("\\recent", "\\deleted")]


async def reappend(
    worker: Upstream,
    mailbox: str,
    originals: Sequence[Fetched],
    flags_of: Callable[[Fetched], Sequence[str]],
    clock: Callable[[], datetime],
    copied: Collection[int] = frozenset(),
) -> None:
    """A fresh copy of each original (fetched whole) in INBOX, with ``flags_of`` its flags and
    the arrival date now, unless ``copied`` names it (an interrupted try appended it already);
    then exactly the originals in ``mailbox`` are expunged by UID, never a plain EXPUNGE."""
    for message in originals:
        if message.uid not in copied:
            await worker.append(INBOX, message.text, flags_of(message), clock())
    uids = [message.uid for message in originals]
    if not uids:
        return
    await worker.select(mailbox)
    await worker.add_flags(uids, ["\\Deleted"])
    await worker.expunge_uids(uids)


def _arrival(fetched: Fetched) -> datetime | None:
    """INTERNALDATE: when the message reached the server."""
    if not fetched.internaldate:
        return None
    try:
        return datetime.strptime(fetched.internaldate.strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


async def release_without_run(
    config: Config, login: str | None, batch: str | None
) -> dict[str, int]:
    """Release now without a running proxy: ``commsproxy release --now`` on its own.

    Needs a ``password_command`` for each login (the proxy is not there to lend the password
    the mail client logged in with). Returns messages released per batch.
    """
    from .own_connection import own_connection

    released: dict[str, int] = {}
    logins = [entry for entry in config.logins if login in (None, entry.username)]
    if not logins:
        raise ReleaseError(f"no [[login]] with username {login!r} in {config.path}")
    with StateStore.open(config.proxy.state_dir) as store:
        for entry in logins:
            async with own_connection(entry, "releasing", ReleaseError) as worker:
                user = entry.username or ""  # own_connection made sure there is one
                names = {b.name: await worker.server_name(b.mailbox) for b in config.batches}
                releaser = Releaser(
                    worker, store, user, names, config.triage,
                    lambda: datetime.now(UTC),
                    history=_saved_history(store, user, config),
                    filing=_rules_only(config, user),
                )  # fmt: skip
                for chosen in config.batches:
                    if batch in (None, chosen.name):
                        moved = await releaser.release(chosen, scheduled=None)
                        released[chosen.name] = released.get(chosen.name, 0) + moved
    return released


def _saved_history(store: StateStore, login: str, config: Config) -> SenderHistory | None:
    """The history with senders ``run`` saved for ``login``, for the digest's order."""
    import json

    from .history import LiveHistory

    saved = store.history(login)
    if saved is None or saved.document is None:
        return None
    history = LiveHistory([login], accounts=config.accounts)
    try:
        history.load_document(json.loads(saved.document))
    except ValueError:
        return None  # run reads it again; the digest goes without
    return history


def _rules_only(config: Config, login: str) -> FilingSetup | None:
    """The [accounts] rules (no model: this command loads none) for the digest's groups."""
    if not config.accounts.accounts:
        return None
    own = (login.lower(),) if "@" in login else ()
    return FilingSetup(AccountRules(config.accounts, own))


class ReleaseError(Exception):
    """A release cannot be done here; the message says what is missing."""
