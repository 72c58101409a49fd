"""Urgency labels from the login's own behaviour: the Priority Inbox idea.

Gmail's Priority Inbox (Aberdeen, Pacovsky & Slater, 2010) learns what matters to one person from
what that person does with their mail, not from hand labels. A mailbox already records the
strongest such action: the replies in the sent folder. So a received message the user answered
within a few hours is ``urgent``; one that carries list or bulk markers is ``bulk``; the rest is
``normal``. Explicit training folders and recorded corrections override all of that.

The work is matching sent mail to the received message it answers, in three ways, most certain
first:

``header``
    the reply's ``In-Reply-To`` (or, without it, the last ``References`` entry) names the
    received message's Message-ID. Modern clients always set these.
``quote``
    the reply quotes the original below a header block: Outlook's ``-----Original Message-----``
    followed by ``From:``/``Sent:``/``To:``/``Subject:``, or Lotus Notes' ``Name`` + ``01/15/2001
    10:31 AM`` + ``To:``/``Subject:``. Sender, subject and (when readable) the quoted send time
    pick the exact message. This is how Outlook-era mail threads (Enron has no In-Reply-To at all).
``subject``
    the reply's subject is ``Re: <subject of the original>`` and the original sender is among
    its recipients; the latest such message before the reply is the one answered.

A quoted block is also found in forwards; a fast forward is acting on a message just as a reply
is, so it counts too (reasons and :class:`ReplyEvent` say which it was), except that it does not
lift a bulk message to urgent: forwarding a newsletter article is not a sign it was urgent.

Mailbox exports hold the same message in several folders (Enron's ``all_documents``,
``discussion_threads`` and ``sent`` copies even have different Message-IDs), so messages are
deduplicated by Message-ID *and* by a digest of date, sender, subject and body prefix.

Everything is indexed (by Message-ID, by normalised subject, by subject and sender) so tens of
thousands of messages take well under a second.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Literal, NamedTuple

from commsproxy.classifier.aliases import find_aliases
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.quotes import QuotedHeader, quoted_original, same_person
from commsproxy.classifier.rebuild import rebuild_originals
from commsproxy.classifier.replies import (
    MATCH_METHODS,
    MatchMethod,
    Reply,
    ReplyEvent,
    ReplyMatching,
)

__all__ = [
    "DEFAULT_REPLY_WINDOW",
    "LABELS",
    "MATCH_METHODS",
    "MAX_RECIPIENTS",
    "Label",
    "LabelResult",
    "LabelledMail",
    "MatchMethod",
    "Override",
    "QuotedHeader",
    "Reply",
    "ReplyEvent",
    "ReplyMatching",
    "bulk_reason",
    "derive_labels",
    "format_duration",
    "infer_user_addresses",
    "match_replies",
    "normalise_subject",
    "quoted_original",
]

Label = Literal["urgent", "normal", "bulk"]
LABELS: tuple[Label, ...] = ("urgent", "normal", "bulk")

DEFAULT_REPLY_WINDOW = timedelta(hours=4)

# More To+Cc recipients than this makes a message bulk. Team mail at Enron reaches 10-15 people;
# announcements reach dozens to hundreds. A reply within the window still wins (see derive_labels).
MAX_RECIPIENTS = 15

# The received Date is the sender's clock, the reply's Date the user's: a header-linked reply
# may appear a few minutes "before" its original. Only for header matches, whose link is
# certain; for subject or quote matches a negative latency means it is not the reply.
CLOCK_SKEW = timedelta(minutes=10)

# A quoted send time is local time of unknown zone (Outlook "Sent: Tuesday, September 12, 2000
# 1:32 AM"), so it can differ from the UTC Date by any zone offset (-12 h .. +14 h), plus
# rounding to the minute. With an explicit zone it must agree to the minute.
QUOTE_LOCAL_TOLERANCE = timedelta(hours=14, minutes=5)
QUOTE_ZONED_TOLERANCE = timedelta(minutes=5)

# User address inference: the most common From addresses of sent mail covering this share of it,
# plus any address with at least USER_ADDRESS_MIN_SHARE of it (an alias, an assistant sending
# on the user's behalf) seen at least USER_ADDRESS_MIN_COUNT times.
USER_ADDRESS_COVERAGE = 0.8
USER_ADDRESS_MIN_SHARE = 0.05
USER_ADDRESS_MIN_COUNT = 2

# Characters of the (whitespace-folded) body in the duplicate digest.
DEDUP_BODY_CHARS = 500


# --- results -------------------------------------------------------------------------------------


class LabelledMail(NamedTuple):
    mail: Mail
    label: Label
    reason: str  # in words, for --explain: "you replied after 35 min", "has List-Unsubscribe"
    rebuilt: bool = False  # made from the quote in a reply; the message itself is not here


@dataclass(frozen=True, slots=True)
class Override:
    """An explicit label and where it came from ("training folder", "correction")."""

    label: Label
    source: str = "explicit label"


@dataclass(frozen=True, slots=True)
class LabelResult:
    labelled: list[LabelledMail]  # received messages in date order (undated overrides first)
    counts: dict[Label, int]
    matches: dict[MatchMethod, int]  # received messages whose first reply each method found
    forwards: int  # of those, how many were forwards rather than replies
    duplicates: int  # copies dropped (same Message-ID, or same date+sender+subject+body)
    undated: int  # received messages left out: without a date they cannot be labelled by timing
    overridden: int  # labels taken from overrides
    received: int  # distinct received messages, dated or not
    sent: int  # distinct sent messages
    user_addresses: frozenset[str]
    reply_events: list[ReplyEvent]  # every matched first reply, in reply order
    rebuilt: int = 0  # of labelled, how many were rebuilt from quotes in replies

    def summary(self) -> str:
        """One paragraph for the train report."""
        counts = ", ".join(f"{self.counts[label]} {label}" for label in LABELS)
        matches = ", ".join(f"{self.matches[method]} by {method}" for method in MATCH_METHODS)
        return (
            f"{self.received} received, {self.sent} sent ({self.duplicates} duplicate copies "
            f"dropped, {self.undated} undated left out): {counts}; replies found: {matches} "
            f"({self.forwards} of them forwards); {self.rebuilt} more received messages rebuilt "
            f"from the quotes in your replies (counted above); {self.overridden} labels from "
            "overrides"
        )


# --- subjects, ids, addresses --------------------------------------------------------------------

_REPLY_WORDS = frozenset({"re", "aw", "sv", "vs", "antw", "r", "rif", "odp", "res", "ynt"})
_FORWARD_WORDS = frozenset({"fw", "fwd", "wg", "tr", "vl", "rv", "enc", "doorst"})
# One prefix ("Re:", "RE[2]:", "Fwd(3):", "AW :") or list tag ("[list]") at the start.
_SUBJECT_PREFIX = re.compile(
    r"\s*(?:(?P<word>[a-z]{1,6})\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]|\[[^\]]*\])\s*", re.IGNORECASE
)

SubjectKind = Literal["reply", "forward"] | None


@lru_cache(maxsize=65536)
def _split_subject(subject: str) -> tuple[str, SubjectKind]:
    rest = subject
    kind: SubjectKind = None
    first = True
    while True:
        match = _SUBJECT_PREFIX.match(rest)
        if match is None:
            break
        word = match.group("word")
        if word is not None:
            word = word.lower()
            if word in _REPLY_WORDS:
                kind = "reply" if first else kind
            elif word in _FORWARD_WORDS:
                kind = "forward" if first else kind
            else:
                break  # "Note: ...", "Agenda: ...": part of the subject, not a prefix
            first = False
        rest = rest[match.end() :]
    return " ".join(rest.split()).casefold(), kind


def normalise_subject(subject: str) -> str:
    """``"RE[2]: [list] Fwd:  Budget  Q3"`` -> ``"budget q3"``: the thread's subject."""
    return _split_subject(subject)[0]


def normalise_id(message_id: str) -> str:
    """A Message-ID as compared everywhere: without angle brackets and surrounding space."""
    return message_id.strip().strip("<>").strip()


def _dedup_key(mail: Mail) -> bytes:
    date = mail.date.isoformat() if mail.date is not None else ""
    body = " ".join(mail.body[: DEDUP_BODY_CHARS * 2].split())[:DEDUP_BODY_CHARS]
    text = "\x00".join((date, mail.sender, " ".join(mail.subject.split()), body))
    return hashlib.blake2b(text.encode("utf-8", "replace"), digest_size=16).digest()


def infer_user_addresses(sent: Iterable[Mail]) -> frozenset[str]:
    """The user's From addresses, from their sent mail.

    The most common addresses until they cover 80% of sent mail, plus any other address on at
    least 5% of it (and twice): an alias, or an assistant who sends from the user's mailbox. A
    stray message someone else left in the sent folder does not make them the user.
    """
    counts = Counter(mail.sender for mail in sent if mail.sender)
    total = sum(counts.values())
    chosen: set[str] = set()
    covered = 0
    for address, count in counts.most_common():
        if covered < USER_ADDRESS_COVERAGE * total or (
            count >= USER_ADDRESS_MIN_SHARE * total and count >= USER_ADDRESS_MIN_COUNT
        ):
            chosen.add(address)
            covered += count
    return frozenset(chosen)


# --- bulk markers --------------------------------------------------------------------------------

# Local parts of machine senders. "alert" only at the end of a word ("issuealert", not "walerton").
_AUTOMATED_LOCAL = re.compile(
    r"no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|bounce|notification"
    r"|newsletter|announce|alerts?(?:$|[-_.+])|webmaster|no[-_.]?address|mailman|listserv"
    r"|majordomo|^owner-|-(?:request|owner)$|communications$"
    r"|^(?:news|digest|updates|marketing|deals|offers|promo|promotions)$"
)


def bulk_reason(mail: Mail, *, max_recipients: int = MAX_RECIPIENTS) -> str | None:
    """Why ``mail`` looks like list, bulk or machine mail, in words; None if it does not."""
    headers = mail.headers
    if "list-unsubscribe" in headers:
        return "has List-Unsubscribe"
    if "list-id" in headers:
        return "has List-Id"
    if "list-post" in headers:
        return "has List-Post"
    precedence = headers.get("precedence", "").strip().lower()
    if precedence in ("bulk", "list", "junk"):
        return f"Precedence: {precedence}"
    auto = headers.get("auto-submitted", "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto.split(';')[0].strip()}"
    local = mail.sender.partition("@")[0]
    if local and _AUTOMATED_LOCAL.search(local):
        return f"automated sender {mail.sender}"
    count = len(set(mail.recipients))
    if count > max_recipients:
        return f"sent to {count} recipients"
    return None


# --- matching ------------------------------------------------------------------------------------


# Received messages with one subject looked at for one quoted block, at most.
_MAX_CANDIDATES = 200


class _DatedList:
    """Received messages sorted by date, with the dates apart for bisect."""

    __slots__ = ("dates", "indices")

    def __init__(self) -> None:
        self.dates: list[datetime] = []
        self.indices: list[int] = []


class _ReceivedIndex:
    """Dated received messages indexed for the three match methods."""

    def __init__(self, received: Sequence[Mail], ids: dict[str, int]) -> None:
        self.received = received
        self.by_id = ids
        self.by_subject: dict[str, _DatedList] = {}
        self.by_subject_sender: dict[tuple[str, str], _DatedList] = {}
        dated: list[tuple[datetime, int]] = []
        for index, mail in enumerate(received):
            if mail.date is not None:
                dated.append((mail.date, index))
        dated.sort()
        for date, index in dated:
            mail = received[index]
            subject = normalise_subject(mail.subject)
            if not subject:
                continue  # an empty subject would match every other empty subject
            for bucket in (
                self.by_subject.setdefault(subject, _DatedList()),
                self.by_subject_sender.setdefault((subject, mail.sender), _DatedList()),
            ):
                bucket.dates.append(date)
                bucket.indices.append(index)

    def latest(self, subject: str, sender: str, before: datetime) -> tuple[datetime, int] | None:
        """The last message with this subject from this sender received by ``before``."""
        bucket = self.by_subject_sender.get((subject, sender))
        if bucket is None:
            return None
        at = bisect_right(bucket.dates, before)
        return (bucket.dates[at - 1], bucket.indices[at - 1]) if at else None

    def quoted(self, quoted: QuotedHeader, subject: str, replied: datetime) -> int | None:
        """The received message a quoted block shows: same subject and sender, closest time."""
        bucket = self.by_subject.get(subject)
        if bucket is None:
            return None
        dates, indices = bucket.dates, bucket.indices
        end = bisect_right(dates, replied)
        if quoted.sent is None:
            # The latest from that sender before the reply (a bounded look back: a subject
            # like "Daily report" can have thousands of messages).
            for i in range(end - 1, max(-1, end - 1 - _MAX_CANDIDATES), -1):
                if same_person(quoted, self.received[indices[i]]):
                    return indices[i]
            return None
        if quoted.sent.tzinfo is not None:
            target, tolerance = quoted.sent, QUOTE_ZONED_TOLERANCE
        else:  # local time of an unknown zone: compare as if UTC, allow any zone offset
            target, tolerance = quoted.sent.replace(tzinfo=UTC), QUOTE_LOCAL_TOLERANCE
        high = min(end, bisect_right(dates, target + tolerance))
        low = max(bisect_right(dates, target - tolerance), high - _MAX_CANDIDATES)
        best: tuple[timedelta, int] | None = None
        for i in range(low, high):
            gap = abs(dates[i] - target)
            if (best is None or gap < best[0]) and same_person(quoted, self.received[indices[i]]):
                best = (gap, indices[i])
        return best[1] if best else None


def _split_mailbox(
    mails: Iterable[Mail],
    is_sent: Callable[[Mail], bool],
    user_addresses: Collection[str] | None,
) -> ReplyMatching:
    sent_folder: list[Mail] = []
    other: list[Mail] = []
    for mail in mails:
        (sent_folder if is_sent(mail) else other).append(mail)
    users = (
        frozenset(address.strip().lower() for address in user_addresses)
        if user_addresses is not None
        else infer_user_addresses(sent_folder)
    )
    # Who kept each Message-ID and content digest: an index into received, or -1 for sent mail.
    id_owner: dict[str, int] = {}
    key_owner: dict[bytes, int] = {}
    duplicates = 0
    sent: list[Mail] = []
    received: list[Mail] = []
    # Sent folders first, so the copy of a sent message in all_documents is the one dropped.
    for in_sent_folder, group in ((True, sent_folder), (False, other)):
        for mail in group:
            message_id = normalise_id(mail.message_id) if mail.message_id else None
            key = _dedup_key(mail)
            owner = id_owner.get(message_id) if message_id is not None else None
            if owner is None:
                owner = key_owner.get(key)
            if owner is not None:
                duplicates += 1
                if message_id is not None:
                    id_owner.setdefault(message_id, owner)
                continue
            # The user's own mail found outside a sent folder is still mail they sent.
            if in_sent_folder or mail.sender in users:
                owner = -1
                sent.append(mail)
            else:
                owner = len(received)
                received.append(mail)
            key_owner[key] = owner
            if message_id is not None:
                id_owner[message_id] = owner
    ids = {message_id: owner for message_id, owner in id_owner.items() if owner >= 0}
    # Aliases say who the mail is to, never who sent it: mail from them stays received.
    users |= find_aliases(users, received)
    return ReplyMatching(received, sent, users, duplicates, ids)


def _to_quarter_hour(delta: timedelta) -> timedelta:
    # Zone offsets are whole quarter hours; the rest is the minutes the reply took to arrive.
    return timedelta(minutes=15 * round(delta.total_seconds() / 900))


def match_replies(
    mails: Iterable[Mail],
    *,
    is_sent: Callable[[Mail], bool],
    user_addresses: Collection[str] | None = None,
) -> ReplyMatching:
    """Deduplicate, split into received and sent, and find the first reply to each received one."""
    matching = _split_mailbox(mails, is_sent, user_addresses)
    index = _ReceivedIndex(matching.received, matching.ids)
    replies = matching.replies

    def offer(at: int, sent: Mail, method: MatchMethod, forwarded: bool) -> None:
        original = matching.received[at]
        if original.date is None or sent.date is None:
            return  # no latency to measure
        latency = sent.date - original.date
        if latency < (-CLOCK_SKEW if method == "header" else timedelta(0)):
            return
        latency = max(latency, timedelta(0))
        current = replies.get(at)
        if current is None or latency < current.latency:
            replies[at] = Reply(sent, method, forwarded, latency)

    for sent in matching.sent:
        if sent.date is None:
            continue
        subject, kind = _split_subject(sent.subject)
        # Only the direct parent: References lists the whole thread, and answering the latest
        # message is not answering the thread's first one.
        parents = sent.in_reply_to or sent.references[-1:]
        if parents:
            # Trust the headers: if the parent is not in this mailbox, a subject match would
            # only find some other message of the thread.
            for parent in parents:
                at = index.by_id.get(normalise_id(parent))
                if at is not None:
                    offer(at, sent, "header", kind == "forward")
            continue
        quoted = quoted_original(sent.body) if sent.body else None
        if quoted is not None:
            # The quote names the answered message. If it is not here (or it is the user's own),
            # a subject match would only find an older message of the thread: do not try.
            quoted_subject = normalise_subject(quoted.subject) or subject
            at = index.quoted(quoted, quoted_subject, sent.date)
            if at is not None:
                offer(at, sent, "quote", quoted.forwarded or kind == "forward")
                original = matching.received[at].date
                if quoted.sent is not None and quoted.sent.tzinfo is None and original:
                    offset = quoted.sent - original.replace(tzinfo=None)
                    matching.quote_offsets[_to_quarter_hour(offset)] += 1
            elif not quoted.forwarded and kind != "forward":
                matching.unmatched_quotes.append((sent, quoted))
        elif kind == "reply" and subject:
            # Answering several senders of the thread at once: the latest message is the one.
            candidates = (index.latest(subject, to, sent.date) for to in set(sent.recipients))
            found = max((c for c in candidates if c is not None), default=None)
            if found is not None:
                offer(found[1], sent, "subject", False)
    return matching


# --- labels --------------------------------------------------------------------------------------


def format_duration(delta: timedelta) -> str:
    """``35 min``, ``3 h 10 min``, ``2.5 days``."""
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    days = minutes / (24 * 60)
    return f"{days:.1f} days" if days < 10 else f"{round(days)} days"


def _reply_words(reply: Reply) -> str:
    verb = "forwarded it" if reply.forwarded else "replied"
    return f"you {verb} after {format_duration(reply.latency)}"


def _decide(
    mail: Mail, reply: Reply | None, reply_window: timedelta, max_recipients: int
) -> tuple[Label, str]:
    bulk = bulk_reason(mail, max_recipients=max_recipients)
    fast = reply is not None and reply.latency <= reply_window
    if reply is not None and fast and (bulk is None or not reply.forwarded):
        reason = _reply_words(reply)
        return "urgent", f"{reason} ({bulk})" if bulk else reason
    if bulk is not None:
        return "bulk", bulk
    if reply is not None:
        return "normal", _reply_words(reply)
    return "normal", "no reply found"


def derive_labels(
    mails: Iterable[Mail],
    *,
    is_sent: Callable[[Mail], bool],
    reply_window: timedelta = DEFAULT_REPLY_WINDOW,
    overrides: Mapping[str, Label | Override] | None = None,
    user_addresses: Collection[str] | None = None,
    max_recipients: int = MAX_RECIPIENTS,
    rebuild: bool = True,
) -> LabelResult:
    """Label every received message ``urgent``, ``normal`` or ``bulk`` from the user's behaviour.

    ``is_sent`` says whether a message is in a sent folder (callers decide by folder name or the
    IMAP ``\\Sent`` special-use). ``user_addresses`` defaults to :func:`infer_user_addresses`.
    ``overrides`` maps Message-IDs to explicit labels (training folders, corrections); they win.

    Decisions:

    * urgent = the first reply (or forward) came within ``reply_window`` of receipt. A reply
      beats bulk markers: answering a person on a mailing list within the hour shows the message
      mattered more than any header can say. A forward does not beat them.
    * bulk = :func:`bulk_reason` found a list header, a machine sender or more than
      ``max_recipients`` recipients.
    * With ``rebuild``, replies whose original is not in the mailbox add that original, made
      from the quote (rebuild.py), labelled the same way and marked ``rebuilt``.
    * Undated messages are left out (counted in ``undated``) unless overridden: without a time
      a reply cannot be measured (the label would be biased to normal), the message cannot be
      placed in a time-ordered split, and its social history has no "before". Overridden undated
      messages come first in ``labelled``, before the dated ones in date order.
    """
    matching = match_replies(mails, is_sent=is_sent, user_addresses=user_addresses)
    # By any copy's Message-ID: the training folder may hold a copy with an id of its own.
    wanted: dict[int, Label | Override] = {}
    for key, value in (overrides or {}).items():
        found = matching.ids.get(normalise_id(key))
        if found is not None:
            wanted[found] = value
    labelled: list[LabelledMail] = []
    undated = overridden = 0
    for at, mail in enumerate(matching.received):
        override = wanted.get(at)
        if override is not None:
            if isinstance(override, Override):
                labelled.append(LabelledMail(mail, override.label, f"override: {override.source}"))
            else:
                labelled.append(LabelledMail(mail, override, "override: explicit label"))
            overridden += 1
            continue
        if mail.date is None:
            undated += 1
            continue
        label, reason = _decide(mail, matching.replies.get(at), reply_window, max_recipients)
        labelled.append(LabelledMail(mail, label, reason))
    events = matching.reply_events
    rebuilt = rebuild_originals(matching) if rebuild else []
    for item in rebuilt:
        reply = Reply(item.reply, "quote", False, item.latency)
        label, reason = _decide(item.mail, reply, reply_window, max_recipients)
        labelled.append(LabelledMail(item.mail, label, f"rebuilt from your reply: {reason}", True))
        if item.mail.sender and item.mail.date is not None and item.reply.date is not None:
            events.append(ReplyEvent(item.mail.sender, item.mail.date, item.reply.date))
    events.sort(key=lambda event: event.replied)
    epoch = datetime.min.replace(tzinfo=UTC)
    labelled.sort(key=lambda item: (item.mail.date is not None, item.mail.date or epoch))
    counts = Counter(item.label for item in labelled)
    return LabelResult(
        labelled=labelled,
        counts={label: counts[label] for label in LABELS},
        matches=matching.matches,
        forwards=sum(1 for reply in matching.replies.values() if reply.forwarded),
        duplicates=matching.duplicates,
        undated=undated,
        overridden=overridden,
        received=len(matching.received),
        sent=len(matching.sent),
        user_addresses=matching.user_addresses,
        reply_events=events,
        rebuilt=len(rebuilt),
    )
