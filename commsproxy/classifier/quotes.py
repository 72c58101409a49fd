"""Quoted originals: the header and text of the message a reply or forward quotes.

Outlook-era mail has no In-Reply-To; a reply shows what it answers only in the quoted block
below its text: Outlook's ``-----Original Message-----`` followed by ``From:``/``Sent:``/
``To:``/``Subject:``, or Lotus Notes' ``Name`` + ``01/15/2001 10:31 AM`` + ``To:``/``Subject:``.
:func:`quoted_original` reads the top-most such block: who sent it, when (as written: local time
of an unknown zone unless the block names one), to whom, its subject and its own text. Reply
matching (labels.py) uses the header to find the received message; when that message is not
in the mailbox, the block is all there is of it (rebuild.py).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import lru_cache

from .mail import Mail

__all__ = [
    "QUOTE_BODY_CHARS",
    "QuotedHeader",
    "names_match",
    "own_text",
    "person_tokens",
    "quoted_original",
    "same_person",
    "split_person",
]

# The top-most quoted block sits right under the reply text; no need to scan a long body.
QUOTE_SCAN_CHARS = 10_000
# Of a quoted message's own text, what features read anyway (features.TEXT_BODY_CHARS).
QUOTE_BODY_CHARS = 3_000


@dataclass(frozen=True, slots=True)
class QuotedHeader:
    """The header of the top-most quoted original inside a reply or forward."""

    sender: str  # address if the block shows one, else ""
    name: str  # display name if the block shows one ("Janet R Dietrich", "Lay, Kenneth")
    subject: str  # as quoted, not normalised ("" if the block has none)
    sent: datetime | None  # aware (UTC) if the block gave a zone, else naive local time
    forwarded: bool  # a forward marker precedes the block
    to: tuple[str, ...] = ()  # the quoted To: people as written ("Fossum, Drew", "a@b.com")
    cc: tuple[str, ...] = ()
    body: str = ""  # the quoted message's own text, up to the next quoted block


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
_LOTUS_FIELD = re.compile(r"^[ \t>]*(To|cc|bcc|Subject)[ \t]*:", re.IGNORECASE)
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


def split_person(value: str) -> tuple[str, str]:
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


def _people(value: str) -> tuple[str, ...]:
    """A quoted To:/Cc: value as people: ``"Fossum, Drew; Harris, Steven"`` is two.

    Outlook separates people with ";" (a comma sits inside "Last, First"); Notes and plain
    addresses use commas, and then each person carries an "@" or a Notes "/" hierarchy.
    """
    value = value.strip()
    if not value:
        return ()
    if ";" in value:
        parts = value.split(";")
    elif "@" in value or "/" in value:
        parts = value.split(",")
    else:
        parts = [value]
    return tuple(part for part in (" ".join(p.split()) for p in parts) if part)


def _lotus_people(lines: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The To: and cc: people of a Notes header, whose lists wrap over several lines."""
    found: dict[str, list[str]] = {"to": [], "cc": [], "bcc": []}
    current: list[str] | None = None
    for line in lines:
        match = _LOTUS_FIELD.match(line)
        if match is not None:
            current = found.get(match.group(1).lower())
            line = line[match.end() :]
        if current is not None and line.strip():
            current.append(line.strip(" \t>"))
    return _people(" ".join(found["to"])), _people(" ".join(found["cc"]))


def _body_from(text: str, start: int) -> str:
    """The quoted message's own text: from ``start`` to the next quoted block, bounded."""
    following = _BLOCK_START.search(text, start)
    end = following.start() if following is not None else len(text)
    return text[start : min(end, start + QUOTE_BODY_CHARS)].strip()


def _outlook_block(text: str, start: int) -> QuotedHeader | None:
    fields: dict[str, str] = {}
    end = start
    for line in _lines_from(text, start, _OUTLOOK_HEADER_LINES):
        end += len(line) + 1
        match = _HEADER_LINE.match(line)
        if match is None:
            continue
        name = match.group(1).lower()
        fields.setdefault("sent" if name == "date" else name, match.group(2).strip())
        if name == "subject":
            break
    if "from" not in fields:
        return None
    address, person = split_person(fields["from"])
    return QuotedHeader(
        address,
        person,
        fields.get("subject", ""),
        _parse_quoted_date(fields.get("sent", "")),
        False,
        _people(fields.get("to", "")),
        _people(fields.get("cc", "")),
        _body_from(text, end),
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
    header_end = to_at + 1
    for header_end, line in enumerate(following[to_at + 1 :], to_at + 1):
        match = _SUBJECT_LINE.match(line)
        if match:
            subject = match.group(1).strip()
            header_end += 1
            break
        if not line.strip():
            blank = True
        elif blank and not _LOTUS_HEADER.match(line):
            break
    to, cc = _lotus_people(following[to_at:header_end])
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
    address, person = split_person(who)
    if not address and "/" in person:
        person = person.split("/", 1)[0]  # Notes hierarchy: "David W Delainey/HOU/ECT@ECT"
    body_start = line_end + 1 + sum(len(line) + 1 for line in following[:header_end])
    return QuotedHeader(
        address,
        person,
        subject,
        _parse_quoted_date(stamp.group("stamp")),
        False,
        to,
        cc,
        _body_from(text, body_start),
    )


def quoted_original(body: str) -> QuotedHeader | None:
    """The header of the top-most quoted message in ``body`` (Outlook or Lotus Notes style)."""
    text = body[:QUOTE_SCAN_CHARS].replace("\r\n", "\n")
    start = _first_block(text)
    if start is None:
        return None
    for match in _BLOCK_START.finditer(text, start):
        if match.group("stamp") is not None:
            block = _lotus_block(text, match)
        else:
            block = _outlook_block(text, match.start())
        if block is not None:
            before = text[max(0, match.start() - 300) : match.end()]
            forwarded = bool(_FORWARD_MARK.search(before))
            return replace(block, forwarded=True) if forwarded else block
    return None


# Searching a long body for its first quoted block is most of what reading a quote costs; the
# cue rules read the writer's own text and then the quote of the same message, one after the
# other, so a short memory of recent searches spares the second.
def _first_block(text: str) -> int | None:
    """Where the first quoted block in ``text`` starts; None when nothing is quoted."""
    return _searched_block(text) if may_quote(text) else None


def may_quote(text: str) -> bool:
    """False when ``text`` cannot hold a quoted block: no "--" (a separator line) and no
    colon after an "m" ("From:"), an "e" ("Begin forwarded message:") or with a "/" (a time
    stamp "01/15/2001 10:31"). Short notes have none, and are spared the search."""
    if "--" in text:
        return True
    if ":" not in text:
        return False
    return "/" in text or "m:" in text or "M:" in text or "e:" in text or "E:" in text


@lru_cache(maxsize=256)
def _searched_block(text: str) -> int | None:
    match = _BLOCK_START.search(text)
    return None if match is None else match.start()


class _OwnText:
    """``own_text``: a function that remembers the own texts of the bodies it read last."""

    def __init__(self, budget: int) -> None:
        self._recent = _RecentTexts(budget)

    def __call__(self, body: str, limit: int = QUOTE_SCAN_CHARS) -> str:
        """What the writer wrote: the body above the first quoted block, without ``>`` lines.

        Urgent words in a quote belong to an older message; read as this one's, every reply
        in an urgent thread would look urgent.
        """
        text = body[:limit]
        if ">" not in text and not may_quote(text):
            # Nothing to search for or leave out: cheaper than remembering (a short note).
            return "\n".join(text.splitlines())
        key = (body, limit)
        found = self._recent.get(key)
        if found is not None:
            return found
        start = _first_block(text)
        if start is not None:
            text = text[:start]
        own = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))
        self._recent.put(key, own, len(body) + len(own))
        return own

    def cache_clear(self) -> None:
        self._recent.clear()

    @property
    def held(self) -> int:
        """Characters held now (bodies and own texts): never above the budget."""
        return self._recent.held


class _RecentTexts:
    """The own texts of the bodies read last, within a budget of characters held.

    The cue rules read a message's own text when it is judged and again when an urgent
    verdict is explained; the budget keeps a batch's worth (a few hundred messages) and never
    more, however long the process runs or however many messages training reads.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.held = 0
        self._texts: OrderedDict[tuple[str, int], tuple[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int]) -> str | None:
        with self._lock:
            found = self._texts.get(key)
            if found is None:
                return None
            self._texts.move_to_end(key)
            return found[0]

    def put(self, key: tuple[str, int], text: str, cost: int) -> None:
        if cost > self.budget:
            return
        with self._lock:
            if key in self._texts:
                return
            self._texts[key] = (text, cost)
            self.held += cost
            while self.held > self.budget:
                _, (_, freed) = self._texts.popitem(last=False)
                self.held -= freed

    def clear(self) -> None:
        with self._lock:
            self._texts.clear()
            self.held = 0


# About 2 MB of Latin text: a triage step of 500 ordinary messages, bodies and own texts.
OWN_TEXT_BUDGET = 2_000_000
own_text = _OwnText(OWN_TEXT_BUDGET)


def person_tokens(name: str) -> tuple[str, ...]:
    """Name words, first to last, without initials: "Lay, Kenneth L." -> ("kenneth", "lay")."""
    # "Drew Fossum/ET&S/Enron@ENRON" (a Notes hierarchy), "drew.fossum@enron.com".
    name = name.split("@", 1)[0].split("/", 1)[0]
    if "," in name:
        last, _, first = name.partition(",")
        name = f"{first} {last}"
    return tuple(word for word in re.split(r"[^a-z]+", name.lower()) if len(word) > 1)


def same_person(quoted: QuotedHeader, mail: Mail) -> bool:
    return names_match(quoted.name or quoted.sender, quoted.sender, mail.sender, mail.sender_name)


def names_match(wanted_name: str, wanted_address: str, address: str, name: str = "") -> bool:
    """Whether a quoted person (name, maybe address) is the one behind ``address``/``name``."""
    if wanted_address and wanted_address == address:
        return True
    wanted = person_tokens(wanted_name)
    if not wanted:
        return False
    have = set(person_tokens(name)) | set(person_tokens(address))
    first, last = wanted[0], wanted[-1]
    if first == last:
        return first in have
    if last not in have:
        return False
    # "Dave Delainey" is david.delainey (same initial); "Love, Phillip M." is m..love@ (the
    # address names no first name at all).
    others = [word for word in have if word != last]
    return not others or first in have or any(word[0] == first[0] for word in others)
