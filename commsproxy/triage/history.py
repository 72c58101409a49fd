"""The user's history with each sender, kept current while ``run`` runs (one per login).

A mutable sibling of :class:`~commsproxy.classifier.contacts.Contacts` with the same view of a
new message (``context``), fed as mail flows: every triaged message counts as received from its
sender (and an alias of the user it is addressed to, classifier/aliases.py, joins the user's
addresses); every message the user sends (through the SMTP side, or found in Sent) may answer one
received before, and its Message-ID makes an answer to it "a reply to your message". Replies are
found by training's own matcher (:func:`~commsproxy.classifier.labels.match_replies`), run on the
one sent message and the few received messages it may answer.

Memory is bounded: the most recently active ``MAX_SENDERS`` senders and domains, the last
``MAX_LATENCIES`` reply times of each (the median is over those, so recent habits count), the
newest ``MAX_SENT_IDS`` sent Message-IDs and the newest ``MAX_RECEIVED`` received messages a
reply may still answer. The whole is saved as JSON in the state store; it names the user's
correspondents and what they wrote about, so nothing of it is ever logged. The relation
(colleague, customer) of up to ``MAX_RELATIONS`` senders is kept in memory alone.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from statistics import median
from typing import TYPE_CHECKING, Any

from ..classifier.aliases import aliases_of
from ..classifier.features import Context
from ..classifier.labels import (
    infer_user_addresses,
    match_replies,
    normalise_id,
    normalise_subject,
)
from ..classifier.mail import Mail
from ..classifier.social import NO_HISTORY, SenderStats, domain_of
from ..config import AccountsConfig
from .account_match import AccountRules

if TYPE_CHECKING:
    from .decide import HistoryView

__all__ = ["FORMAT", "LiveHistory"]

FORMAT = 1
MAX_SENDERS = 20_000  # senders, and domains apart
MAX_LATENCIES = 50  # reply times kept per sender or domain
MAX_SENT_IDS = 20_000
MAX_RECEIVED = 20_000  # received messages remembered for matching replies and counting once
MAX_USER_ADDRESSES = 50


@dataclass(slots=True)
class _Tally:
    received: int = 0
    replied: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_LATENCIES))

    def stats(self) -> SenderStats:
        middle = median(self.latencies) if self.latencies else None
        return SenderStats(self.received, self.replied, middle, None)


@dataclass(slots=True)
class _Received:
    """A received message as far as matching a later reply needs it."""

    message_id: str | None
    sender: str
    date: datetime | None
    subject: str  # normalised (labels.normalise_subject)
    answered: bool = False

    def as_mail(self) -> Mail:
        return Mail(
            message_id=self.message_id,
            in_reply_to=(),
            references=(),
            date=self.date,
            sender=self.sender,
            sender_name="",
            to=(),
            cc=(),
            subject=self.subject,
            body="",
        )


def _received_key(mail: Mail) -> str:
    """The same message read twice (at the first start, then by triage) counts once."""
    if mail.message_id:
        return normalise_id(mail.message_id)
    date = mail.date.isoformat() if mail.date else ""
    text = "\x00".join((mail.sender, date, mail.subject))
    return "#" + hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=12).hexdigest()


class LiveHistory:
    """Per sender and per domain: received, replied, median reply time; the sent Message-IDs.

    ``known`` is False until the history was read from the server (or loaded from the store);
    until then ``context`` answers from ``fallback`` (the contacts training saved beside the
    model for this login) or, without one, as "nothing known" -- the model scores cold.
    """

    def __init__(
        self,
        user_addresses: Iterable[str] = (),
        *,
        accounts: AccountsConfig | None = None,
        fallback: HistoryView | None = None,
    ) -> None:
        self.known = False
        self.fallback = fallback
        self.changed = False  # since the last save
        self._accounts = accounts or AccountsConfig()
        self._configured = frozenset(a.strip().lower() for a in user_addresses if "@" in a)
        self._users: set[str] = set(self._configured)
        # Both follow the user's addresses: dropped whenever one joins (_add_users).
        self._relations: _Relations | None = None
        self._all_users: tuple[frozenset[str], frozenset[str]] | None = None  # (asked, union)
        self._senders: OrderedDict[str, _Tally] = OrderedDict()
        self._domains: OrderedDict[str, _Tally] = OrderedDict()
        self._sent_ids: OrderedDict[str, None] = OrderedDict()
        self._received: OrderedDict[str, _Received] = OrderedDict()

    # -- what triage asks --------------------------------------------------------------------

    @property
    def user_addresses(self) -> frozenset[str]:
        return frozenset(self._users)

    def context(self, mail: Mail, user_addresses: frozenset[str]) -> Context:
        """The features' view of a new message (decide.HistoryView)."""
        sender = mail.sender.strip().lower()
        relation = self.relation(sender) if sender else None
        if not self.known:
            if self.fallback is not None:
                return dataclasses.replace(
                    self.fallback.context(mail, user_addresses), relation=relation
                )
            users = self._users_with(user_addresses)
            return Context(user_addresses=users, history_known=False, relation=relation)
        thread = (*mail.in_reply_to, *mail.references)
        return Context(
            user_addresses=self._users_with(user_addresses),
            sender=self.sender_stats(sender) if sender else None,
            domain=self.domain_stats(sender) if sender else None,
            replies_to_user=any(normalise_id(i) in self._sent_ids for i in thread),
            history_known=True,
            relation=relation,
        )

    def relation(self, sender: str) -> str | None:
        """ "colleague" (own or internal domain), "customer" (an [accounts] rule), or None."""
        relations = self._relations
        if relations is None:
            relations = self._relations = _Relations(self._accounts, sorted(self._users))
        return relations.of(sender)

    def _users_with(self, user_addresses: frozenset[str]) -> frozenset[str]:
        """``user_addresses`` and the ones the history found, made once per set asked with."""
        known = self._all_users
        if known is None or known[0] is not user_addresses:
            known = self._all_users = (user_addresses, user_addresses | self._users)
        return known[1]

    def sender_stats(self, address: str) -> SenderStats:
        tally = self._senders.get(address.strip().lower())
        return tally.stats() if tally is not None else NO_HISTORY

    def domain_stats(self, address_or_domain: str) -> SenderStats:
        tally = self._domains.get(domain_of(address_or_domain))
        return tally.stats() if tally is not None else NO_HISTORY

    def __len__(self) -> int:
        """How many senders it knows."""
        return len(self._senders)

    @property
    def sent_count(self) -> int:
        return len(self._sent_ids)

    # -- what flows in -----------------------------------------------------------------------

    def absorb(
        self, mails: Sequence[Mail], is_sent: Callable[[Mail], bool], login: str | None = None
    ) -> None:
        """The first read of the server: match replies over all of it at once."""
        sent = [m for m in mails if is_sent(m)]
        inferred = infer_user_addresses(sent)
        self._add_users([*([login] if login and "@" in login else []), *inferred])
        matching = match_replies(mails, is_sent=is_sent, user_addresses=self._users)
        self._add_users(matching.user_addresses)  # with the aliases the received mail shows
        answered = set(matching.replies)
        oldest_first = sorted(
            range(len(matching.received)), key=lambda i: _sort_date(matching.received[i])
        )
        for index in oldest_first:
            self.add_received(matching.received[index], answered=index in answered)
        for event in matching.reply_events:
            self._add_reply(event.sender, event.latency.total_seconds() / 60)
        for mail in sorted(matching.sent, key=_sort_date):
            self._remember_sent(mail)
        self.changed = True

    def add_received(self, mail: Mail, *, answered: bool = False) -> bool:
        """A message received from ``mail.sender``; False when it was counted before."""
        sender = mail.sender.strip().lower()
        if not sender or sender in self._users:
            return False
        self._add_users(aliases_of(mail.to, mail.cc, self._users))
        key = _received_key(mail)
        if key in self._received:
            return False
        subject = normalise_subject(mail.subject)
        self._received[key] = _Received(mail.message_id, sender, mail.date, subject, answered)
        _trim(self._received, MAX_RECEIVED)
        for tally in self._tallies(sender):
            tally.received += 1
        self.changed = True
        return True

    def add_sent(self, mail: Mail, *, from_user: bool = False) -> bool:
        """A message the user sent; False when it was seen before (SMTP, then its Sent copy).

        ``from_user``: it certainly came from the user (the SMTP side), so its From address is
        one of theirs; a message in Sent is trusted only as :func:`infer_user_addresses` does.
        """
        if mail.message_id and normalise_id(mail.message_id) in self._sent_ids:
            return False
        if from_user and mail.sender:
            self._add_users([mail.sender])
        self._remember_sent(mail)
        parents = {normalise_id(i) for i in (*mail.in_reply_to, *mail.references)}
        subject = normalise_subject(mail.subject)
        candidates = [
            (key, entry)
            for key, entry in self._received.items()
            if not entry.answered
            and entry.date is not None
            and (
                (entry.message_id and normalise_id(entry.message_id) in parents)
                or (subject and entry.subject == subject)
            )
        ]
        if candidates and mail.date is not None:
            stubs = [entry.as_mail() for _, entry in candidates]
            matching = match_replies(
                [mail, *stubs], is_sent=lambda m: m is mail, user_addresses=self._users
            )
            by_stub = {id(stub): entry for stub, (_, entry) in zip(stubs, candidates, strict=True)}
            for index, reply in matching.replies.items():
                original = matching.received[index]
                entry = by_stub.get(id(original))
                if entry is None or original.date is None or reply.sent.date is None:
                    continue
                entry.answered = True
                self._add_reply(entry.sender, reply.latency.total_seconds() / 60)
        self.changed = True
        return True

    def add_sent_batch(self, mails: Sequence[Mail]) -> int:
        """Messages found in Sent: its From addresses as :func:`infer_user_addresses` trusts."""
        self._add_users(infer_user_addresses(mails))
        return sum(self.add_sent(mail) for mail in sorted(mails, key=_sort_date))

    # -- bookkeeping -------------------------------------------------------------------------

    def _add_users(self, addresses: Iterable[str]) -> None:
        for address in addresses:
            address = address.strip().lower()
            known = address in self._users
            if "@" in address and not known and len(self._users) < MAX_USER_ADDRESSES:
                self._users.add(address)
                self._relations = None
                self._all_users = None

    def _remember_sent(self, mail: Mail) -> None:
        if mail.message_id:
            self._sent_ids[normalise_id(mail.message_id)] = None
            self._sent_ids.move_to_end(normalise_id(mail.message_id))
            _trim(self._sent_ids, MAX_SENT_IDS)

    def _add_reply(self, sender: str, minutes: float) -> None:
        for tally in self._tallies(sender.strip().lower()):
            tally.replied += 1
            tally.latencies.append(minutes)

    def _tallies(self, sender: str) -> tuple[_Tally, _Tally]:
        return _touch(self._senders, sender), _touch(self._domains, domain_of(sender))

    # -- saving ------------------------------------------------------------------------------

    def to_document(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "users": sorted(self._users - self._configured),
            "senders": _rows(self._senders),
            "domains": _rows(self._domains),
            "sent_ids": list(self._sent_ids),
            "received": [
                [key, r.message_id, r.sender, r.date and r.date.isoformat(), r.subject, r.answered]
                for key, r in self._received.items()
            ],
        }

    def load_document(self, document: Mapping[str, Any]) -> None:
        """Take over a saved history; ValueError (nothing changed) when it is not one."""
        try:
            if document.get("format") != FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {FORMAT}")
            senders = _parse_rows(document["senders"])
            domains = _parse_rows(document["domains"])
            sent_ids = OrderedDict((str(i), None) for i in document["sent_ids"])
            received: OrderedDict[str, _Received] = OrderedDict()
            for key, message_id, sender, date, subject, answered in document["received"]:
                when = datetime.fromisoformat(date) if date is not None else None
                received[str(key)] = _Received(
                    message_id, str(sender), when, str(subject), bool(answered)
                )
            users = [str(u) for u in document["users"]]
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            raise ValueError(f"not a saved history of this version ({err})") from None
        self._senders, self._domains = senders, domains
        self._sent_ids, self._received = sent_ids, received
        self._add_users(users)
        self.known = True
        self.changed = False


# Senders whose relation is remembered; a burst of new mail comes from far fewer.
MAX_RELATIONS = 4096


class _Relations:
    """Each sender's relation under one set of rules (the accounts config, the user's
    addresses), worked out once per sender: the rules read the address's domain and try
    each internal domain and account, for every new message."""

    def __init__(self, accounts: AccountsConfig, users: Sequence[str]) -> None:
        self._rules = AccountRules(accounts, users)
        self._known: dict[str, str | None] = {}

    def of(self, sender: str) -> str | None:
        try:
            return self._known[sender]
        except KeyError:
            pass
        rules = self._rules
        if rules.is_internal(sender):
            found: str | None = "colleague"
        else:
            found = "customer" if rules.match(sender) is not None else None
        if len(self._known) >= MAX_RELATIONS:
            self._known.clear()
        self._known[sender] = found
        return found


def _sort_date(mail: Mail) -> float:
    return mail.date.timestamp() if mail.date is not None else float("-inf")


def _touch(table: OrderedDict[str, _Tally], key: str) -> _Tally:
    """The tally of ``key``, made the most recent; the least recent beyond the cap is dropped."""
    tally = table.get(key)
    if tally is None:
        tally = table[key] = _Tally()
        _trim(table, MAX_SENDERS)
    else:
        table.move_to_end(key)
    return tally


def _trim(table: OrderedDict[str, Any], limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)


def _rows(table: Mapping[str, _Tally]) -> dict[str, list[Any]]:
    return {key: [t.received, t.replied, list(t.latencies)] for key, t in table.items()}


def _parse_rows(rows: Mapping[str, Any]) -> OrderedDict[str, _Tally]:
    parsed: OrderedDict[str, _Tally] = OrderedDict()
    for key, (received, replied, latencies) in rows.items():
        if not isinstance(received, int) or not isinstance(replied, int):
            raise ValueError(f"counts for a sender are not whole numbers: {received!r}")
        tally = _Tally(received, replied)
        tally.latencies.extend(float(x) for x in latencies)
        parsed[str(key)] = tally
    return parsed
