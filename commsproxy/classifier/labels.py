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
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Literal, NamedTuple

from commsproxy.classifier.mail import Mail

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

MatchMethod = Literal["header", "quote", "subject"]
MATCH_METHODS: tuple[MatchMethod, ...] = ("header", "quote", "subject")

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

# The top-most quoted block sits right under the reply text; no need to scan a long body.
QUOTE_SCAN_CHARS = 10_000

# User address inference: the most common From addresses of sent mail covering this share of it,
# plus any address with at least USER_ADDRESS_MIN_SHARE of it (an alias, an assistant sending
# on the user's behalf) seen at least USER_ADDRESS_MIN_COUNT times.
USER_ADDRESS_COVERAGE = 0.8
USER_ADDRESS_MIN_SHARE = 0.05
USER_ADDRESS_MIN_COUNT = 2

# Characters of the (whitespace-folded) body in the duplicate digest.
DEDUP_BODY_CHARS = 500


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReplyEvent:
    """The user answered (or forwarded) a message from ``sender`` received at ``received``."""

    sender: str
    received: datetime
    replied: datetime
    forwarded: bool = False

    @property
    def latency(self) -> timedelta:
        return max(self.replied - self.received, timedelta(0))


class LabelledMail(NamedTuple):
    mail: Mail
    label: Label
    reason: str  # in words, for --explain: "you replied after 35 min", "has List-Unsubscribe"


@dataclass(frozen=True, slots=True)
class Override:
    """An explicit label and where it came from ("training folder", "correction")."""

    label: Label
    source: str = "explicit label"


@dataclass(frozen=True, slots=True)
class Reply:
    """The first answer to a received message: which sent message, found how, how late."""

    sent: Mail
    method: MatchMethod
    forwarded: bool
    latency: timedelta


@dataclass(slots=True)
class ReplyMatching:
    """Deduplicated mail split into received and sent, and the first reply to each received one."""

    received: list[Mail]  # not sent, not from the user; dated and undated, in input order
    sent: list[Mail]  # in a sent folder, or from the user wherever it was found
    user_addresses: frozenset[str]
    duplicates: int
    # Message-ID of every received copy, dropped ones too -> index into received: Enron's copies
    # have their own Message-IDs, and a reply or an override may name any of them.
    ids: dict[str, int] = field(default_factory=dict)
    replies: dict[int, Reply] = field(default_factory=dict)  # index into received -> first reply

    @property
    def matches(self) -> dict[MatchMethod, int]:
        counts = Counter(reply.method for reply in self.replies.values())
        return {method: counts[method] for method in MATCH_METHODS}

    @property
    def reply_events(self) -> list[ReplyEvent]:
        events = []
        for index, reply in self.replies.items():
            mail = self.received[index]
            # Only dated messages are ever matched.
            assert mail.date is not None
            assert reply.sent.date is not None
            events.append(ReplyEvent(mail.sender, mail.date, reply.sent.date, reply.forwarded))
        events.sort(key=lambda event: event.replied)
        return events


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

    def summary(self) -> str:
        """One paragraph for the train report."""
        counts = ", ".join(f"{self.counts[label]} {label}" for label in LABELS)
        matches = ", ".join(f"{self.matches[method]} by {method}" for method in MATCH_METHODS)
        return (
            f"{self.received} received, {self.sent} sent ({self.duplicates} duplicate copies "
            f"dropped, {self.undated} undated left out): {counts}; replies found: {matches} "
            f"({self.forwards} of them forwards); {self.overridden} labels from overrides"
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


# --- quoted original blocks ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuotedHeader:
    """The header of the top-most quoted original inside a reply or forward."""

    sender: str  # address if the block shows one, else ""
    name: str  # display name if the block shows one ("Janet R Dietrich", "Lay, Kenneth")
    subject: str  # as quoted, not normalised ("" if the block has none)
    sent: datetime | None  # aware (UTC) if the block gave a zone, else naive local time
    forwarded: bool  # a forward marker precedes the block


_BLOCK_START = re.compile(
    r"^[ \t>]*(?:"
    r"(?P<separator>-{2,}[ \t]*(?:Original Message|Forwarded message|Urspr\w+ngliche Nachricht"
    r"|Message d'origine)[ \t]*-{2,}|Begin forwarded message:)"
    r"|(?P<outlook>From:[^\n]*\n(?:[ \t>]*\n)?[ \t>]*(?:Sent|Date):)"
    r")"
    r"|(?P<stamp>(?<![\d/])\d{1,2}/\d{1,2}/\d{2,4}[ \t]+\d{1,2}:\d{2}(?::\d{2})?"
    r"(?:[ \t]*[AaPp][Mm])?)",
    re.MULTILINE | re.IGNORECASE,
)
_HEADER_LINE = re.compile(r"^[ \t>]*(From|Sent|Date|To|Cc|Subject)[ \t]*:[ \t]*(.*)$", re.I)
_TO_LINE = re.compile(r"^[ \t>]*To[ \t]*:", re.IGNORECASE)
_LOTUS_HEADER = re.compile(r"^[ \t>]*(?:To|cc|bcc)[ \t]*:", re.IGNORECASE)
_SUBJECT_LINE = re.compile(r"^[ \t>]*Subject[ \t]*:[ \t]*(.*)$", re.IGNORECASE)
_FORWARD_MARK = re.compile(r"forwarded by|forwarded message|begin forwarded", re.IGNORECASE)
_ADDRESS = re.compile(r"[\w.+'=-]+@[\w-]+(?:\.[\w-]+)+")
_ANGLE_OR_MAILTO = re.compile(r"\[mailto:[^\]]*\]|<[^>]*>")
# How far below a Lotus time stamp the "To:" line and the "Subject:" line may be.
_LOTUS_TO_LINES = 6
_LOTUS_HEADER_LINES = 80  # To: lists of fifty people wrap over many lines
_OUTLOOK_HEADER_LINES = 14

# Quoted send times, read with regexes: strptime is slow and depends on the locale.
_TIME = r"(?P<hour>\d{1,2}):(?P<minute>\d{2})(?::(?P<second>\d{2}))?(?:\s*(?P<ampm>[ap])\.?m\b\.?)?"
_NUMERIC_DATE = re.compile(  # Lotus "01/15/2001 10:31 AM", "12/30/99 09:18 AM", "15.01.2001 10:31"
    r"(?<!\d)(?P<a>\d{1,2})(?P<sep>[/.])(?P<b>\d{1,2})[/.](?P<year>\d{4}|\d{2}),?\s+" + _TIME,
    re.IGNORECASE,
)
_MONTH_FIRST = re.compile(  # Outlook "Tuesday, September 12, 2000 1:32 AM"
    r"\b(?P<month>[a-z]{3,9})\.?\s+(?P<day>\d{1,2}),?\s+(?P<year>\d{4}),?\s+(?:at\s+)?" + _TIME,
    re.IGNORECASE,
)
_DAY_FIRST = re.compile(  # "12 September 2000 09:32", "Tue, 12 Sep 2000 01:32:00"
    r"(?<!\d)(?P<day>\d{1,2})\.?\s+(?P<month>[a-z]{3,9})\.?,?\s+(?P<year>\d{4}),?\s+(?:at\s+)?"
    + _TIME,
    re.IGNORECASE,
)
_ZONE = re.compile(r"(?:[+-]\d{4}|\b(?:GMT|UTC|UT|[ECMP][SD]T))\s*(?:\([^)]*\))?\s*$")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}


def _local_time(match: re.Match[str], year: int, month: int, day: int) -> datetime | None:
    hour, minute = int(match.group("hour")), int(match.group("minute"))
    second = int(match.group("second") or 0)
    ampm = (match.group("ampm") or "").lower()
    if ampm and 1 <= hour <= 12:
        hour = hour % 12 + (12 if ampm == "p" else 0)
    if year < 100:
        year += 2000 if year < 70 else 1900
    try:
        return datetime(year, month, day, hour, minute, second)  # local time, zone unknown
    except ValueError:
        return None


def _parse_quoted_date(text: str) -> datetime | None:
    """A quoted send time: aware (UTC) if it names its zone, else naive local time."""
    text = " ".join(text.split())
    if not text:
        return None
    if _ZONE.search(text) and not re.search(r"\d\s*[ap]\.?m\b", text, re.IGNORECASE):
        # RFC 5322 with a zone (email.utils ignores AM/PM, hence not with one).
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed.astimezone(UTC)
    match = _NUMERIC_DATE.search(text)
    if match is not None:
        a, b, year = int(match.group("a")), int(match.group("b")), int(match.group("year"))
        # US month/day with slashes (Lotus, Outlook in en-US), day.month with dots.
        month, day = (a, b) if match.group("sep") == "/" else (b, a)
        if month > 12:
            month, day = day, month
        return _local_time(match, year, month, day)
    for pattern in (_MONTH_FIRST, _DAY_FIRST):
        match = pattern.search(text)
        if match is not None:
            named = _MONTHS.get(match.group("month")[:3].lower())
            if named is not None:
                return _local_time(match, int(match.group("year")), named, int(match.group("day")))
    return None


def _split_person(value: str) -> tuple[str, str]:
    """``'"Brown, Charles" <cb@x.com>'`` -> (``"cb@x.com"``, ``"Brown, Charles"``)."""
    found = _ADDRESS.search(value)
    address = found.group(0).lower() if found else ""
    name = _ANGLE_OR_MAILTO.sub(" ", value)
    name = name.replace('"', " ").replace("'", " ").strip(" \t,;")
    if _ADDRESS.fullmatch(name.strip()):
        name = ""
    return address, " ".join(name.split())


def _lines_from(text: str, start: int, count: int) -> list[str]:
    # A bounded slice: a body full of time stamps must not copy its whole rest for each one.
    return text[start : start + count * 100].split("\n", count)[:count]


def _outlook_block(text: str, start: int) -> QuotedHeader | None:
    fields: dict[str, str] = {}
    for line in _lines_from(text, start, _OUTLOOK_HEADER_LINES):
        match = _HEADER_LINE.match(line)
        if match is None:
            continue
        name = match.group(1).lower()
        fields.setdefault("sent" if name == "date" else name, match.group(2).strip())
        if name == "subject":
            break
    if "from" not in fields:
        return None
    address, person = _split_person(fields["from"])
    return QuotedHeader(
        address,
        person,
        fields.get("subject", ""),
        _parse_quoted_date(fields.get("sent", "")),
        False,
    )


def _name_like(line: str) -> str:
    """``line`` if it can be a Notes sender name ("Louis Soldano", "Brett R Wiggs@ENRON")."""
    line = line.strip(" \t>")
    if not line or len(line) > 80 or len(line.split()) > 6 or ":" in line or "--" in line:
        return ""
    if _BLOCK_START.search(line) or _FORWARD_MARK.search(line):
        return ""
    return line


def _lotus_block(text: str, stamp: re.Match[str]) -> QuotedHeader | None:
    line_start = text.rfind("\n", 0, stamp.start()) + 1
    line_end = text.find("\n", stamp.end())
    line_end = len(text) if line_end < 0 else line_end
    if _FORWARD_MARK.search(text, line_start, line_end):
        return None  # "Forwarded by X on <stamp>": the forwarder, not the original's sender
    following = _lines_from(text, line_end + 1, _LOTUS_HEADER_LINES)
    to_at = next(
        (i for i, line in enumerate(following[:_LOTUS_TO_LINES]) if _TO_LINE.match(line)), None
    )
    if to_at is None:
        return None
    # To: and cc: wrap over many lines; Subject: may follow a blank line. Body text after a
    # blank line ends the header.
    subject = ""
    blank = False
    for line in following[to_at + 1 :]:
        match = _SUBJECT_LINE.match(line)
        if match:
            subject = match.group(1).strip()
            break
        if not line.strip():
            blank = True
        elif blank and not _LOTUS_HEADER.match(line):
            break
    # The sender is before the stamp on its line ("From: Ben F Jacoby   08/30/2000 09:48 PM",
    # '"Brown, Charles" <cb@x.com> on 09/12/2000 ...'), else between the stamp and To: (Notes
    # tables rendered as text repeat it there), else alone on the line above.
    who = text[line_start : stamp.start()].strip(" \t>")
    who = re.sub(r"^From:\s*|\s+on$", "", who, flags=re.IGNORECASE).strip()
    if not who:
        who = next(filter(None, map(_name_like, following[:to_at])), "")
    if not who:
        above = text[max(0, line_start - 200) : line_start].rstrip("\n").rsplit("\n", 1)[-1]
        who = _name_like(above)
    address, person = _split_person(who)
    if not address and "/" in person:
        person = person.split("/", 1)[0]  # Notes hierarchy: "David W Delainey/HOU/ECT@ECT"
    return QuotedHeader(address, person, subject, _parse_quoted_date(stamp.group("stamp")), False)


def quoted_original(body: str) -> QuotedHeader | None:
    """The header of the top-most quoted message in ``body`` (Outlook or Lotus Notes style)."""
    text = body[:QUOTE_SCAN_CHARS].replace("\r\n", "\n")
    for match in _BLOCK_START.finditer(text):
        if match.group("stamp") is not None:
            block = _lotus_block(text, match)
        else:
            block = _outlook_block(text, match.start())
        if block is not None:
            before = text[max(0, match.start() - 300) : match.end()]
            forwarded = bool(_FORWARD_MARK.search(before))
            if forwarded:
                block = QuotedHeader(block.sender, block.name, block.subject, block.sent, True)
            return block
    return None


@lru_cache(maxsize=65536)
def _person_tokens(name: str) -> tuple[str, ...]:
    """Name words, first to last, without initials: "Lay, Kenneth L." -> ("kenneth", "lay")."""
    if "@" in name:
        name = name.split("@", 1)[0]
    if "," in name:
        last, _, first = name.partition(",")
        name = f"{first} {last}"
    return tuple(word for word in re.split(r"[^a-z]+", name.lower()) if len(word) > 1)


def _same_person(quoted: QuotedHeader, mail: Mail) -> bool:
    if quoted.sender and quoted.sender == mail.sender:
        return True
    wanted = _person_tokens(quoted.name or quoted.sender)
    if not wanted:
        return False
    have = set(_person_tokens(mail.sender_name)) | set(_person_tokens(mail.sender))
    first, last = wanted[0], wanted[-1]
    if first == last:
        return first in have
    if last not in have:
        return False
    # "Dave Delainey" is david.delainey (same initial); "Love, Phillip M." is m..love@ (the
    # address names no first name at all).
    others = [word for word in have if word != last]
    return not others or first in have or any(word[0] == first[0] for word in others)


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
                if _same_person(quoted, self.received[indices[i]]):
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
            if (best is None or gap < best[0]) and _same_person(quoted, self.received[indices[i]]):
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
    return ReplyMatching(received, sent, users, duplicates, ids)


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


def derive_labels(
    mails: Iterable[Mail],
    *,
    is_sent: Callable[[Mail], bool],
    reply_window: timedelta = DEFAULT_REPLY_WINDOW,
    overrides: Mapping[str, Label | Override] | None = None,
    user_addresses: Collection[str] | None = None,
    max_recipients: int = MAX_RECIPIENTS,
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
        reply = matching.replies.get(at)
        bulk = bulk_reason(mail, max_recipients=max_recipients)
        fast = reply is not None and reply.latency <= reply_window
        if reply is not None and fast and (bulk is None or not reply.forwarded):
            reason = _reply_words(reply)
            labelled.append(LabelledMail(mail, "urgent", f"{reason} ({bulk})" if bulk else reason))
        elif bulk is not None:
            labelled.append(LabelledMail(mail, "bulk", bulk))
        elif reply is not None:
            labelled.append(LabelledMail(mail, "normal", _reply_words(reply)))
        else:
            labelled.append(LabelledMail(mail, "normal", "no reply found"))
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
        reply_events=matching.reply_events,
    )
