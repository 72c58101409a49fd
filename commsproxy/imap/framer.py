"""Sans-IO framing of an IMAP byte stream into whole messages.

An IMAP message (a client command or a server response) is a line ending in CRLF, except that a
line ending in a literal announcement -- ``{n}``, ``{n+}`` (LITERAL+) or ``~{n}`` (BINARY) -- is
followed by exactly n bytes of literal data, after which the same message goes on with another
line. Framing the stream this way, before anything is parsed, is what keeps literal bytes (a mail
body that happens to contain ``a1 LOGOUT``) from ever being read as protocol.

Feed bytes with :meth:`Framer.receive_data` and pull events with :meth:`Framer.next_event`:

    Line         one line including its line ending; ``first`` marks the start of a message and
                 ``literal`` the announcement it ends with, if any (a Line without one ends
                 the message)
    LiteralData  literal bytes, handed on as they arrive (a 50 MB literal is never held whole)
    MessageEnd   the message is complete; ``head`` is its first ``max_head`` bytes (lines and
                 literal bytes in order) for the parser, ``truncated`` says whether more followed;
                 only emitted when ``max_head > 0`` (a relay direction that parses first lines
                 only saves the work)
    Unread       whole messages, or the rest of one, that the reader said it never reads
                 (``unread``): handed on in one chunk per read, without a Line per line

A reader that needs only some messages (the relay reads a server's tagged replies and a few
untagged ones, not the thousands of ``* n FETCH`` lines of a sync) gives ``unread``, the start of
a first line it does not need as a regular expression of at most 24 bytes
(``rb"\\* [0-9]{1,20} FETCH "``). While ``passing`` is set, runs of such messages -- their first
lines, their literals and the lines between -- come out as one Unread each, found by a regular
expression and ``bytes.find`` over the whole buffer; everything else comes out as before. Unread
needs ``max_head == 0``.

Concatenating the ``data`` of every Line, LiteralData and Unread gives back the input byte for
byte, so a relay forwards exactly what it received. Memory is bounded: a line longer than
``max_line`` raises :class:`LineTooLong`, an announced literal larger than ``max_literal`` raises
:class:`LiteralTooLarge`, and neither is buffered first. No I/O and no asyncio here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

__all__ = [
    "NEED_DATA",
    "Event",
    "Framer",
    "FramingError",
    "IncompleteMessage",
    "Line",
    "LineTooLong",
    "LiteralData",
    "LiteralSpec",
    "LiteralTooLarge",
    "MessageEnd",
    "NeedData",
    "Unread",
]

# The longest literal announcement we parse: "~{" + 20 digits + "+}\r\n".
_MAX_ANNOUNCEMENT = 26


class NeedData(Enum):
    """Sentinel: the framer has consumed everything and needs more bytes."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


@dataclass(slots=True)
class LiteralSpec:
    """A literal announced at the end of a line."""

    size: int
    synchronizing: bool  # ``{n}``: the client waits for a ``+`` continuation before sending it
    binary: bool  # ``~{n}``: literal8 (RFC 3516)


# Events are created several times per message on the hot path: slotted but not frozen, since
# a frozen dataclass's __init__ costs three times as much. Treat them as read-only.
@dataclass(slots=True)
class Line:
    data: bytes
    first: bool
    literal: LiteralSpec | None


@dataclass(slots=True)
class LiteralData:
    data: bytes


@dataclass(slots=True)
class MessageEnd:
    head: bytes
    truncated: bool


@dataclass(slots=True)
class Unread:
    data: bytes


Event = Line | LiteralData | MessageEnd | Unread


class FramingError(Exception):
    """The peer sent a byte stream that cannot be framed within our bounds."""


class LineTooLong(FramingError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"line longer than {limit} bytes")
        self.limit = limit


class LiteralTooLarge(FramingError):
    """An announced literal exceeds the bound.

    The framer has already dropped the announcing line and reset itself to the start of a
    message, so a caller that refuses a synchronizing literal (the peer will not send it before
    a continuation) can answer ``BAD`` and carry on.
    """

    def __init__(self, spec: LiteralSpec, limit: int, line: bytes, first: bool) -> None:
        super().__init__(f"literal of {spec.size} bytes exceeds the limit of {limit} bytes")
        self.spec = spec
        self.limit = limit
        self.line = line
        self.first = first


class IncompleteMessage(FramingError):
    """The stream ended in the middle of a line or literal."""


def parse_announcement(line: bytes) -> LiteralSpec | None:
    """The literal a line announces at its end (before CRLF), or None."""
    if b"}" not in line[-3:]:  # the common case, decided cheaply
        return None
    end = len(line)
    if line.endswith(b"\r\n"):
        end -= 2
    elif line.endswith(b"\n"):
        end -= 1
    if end < 3 or line[end - 1] != 0x7D:  # "}"
        return None
    start = line.rfind(b"{", max(0, end - _MAX_ANNOUNCEMENT), end)
    if start < 0:
        return None
    body = line[start + 1 : end - 1]
    synchronizing = True
    if body.endswith((b"+", b"-")):
        synchronizing = False
        body = body[:-1]
    if not body or not body.isdigit() or len(body) > 20:
        return None
    binary = start > 0 and line[start - 1] == 0x7E  # "~"
    return LiteralSpec(int(body), synchronizing, binary)


# How much of a line an ``unread`` pattern may match (the rest is counted against max_line).
_MAX_UNREAD_START = 24
# The most ``short_lines`` hands out at once: a reply, a SELECT's answer, an IDLE's news.
_SHORT, _SHORT_LINES = 4096, 16
_WHOLE_LINES = re.compile(rb"[^\n]*\n")


@lru_cache(maxsize=8)
def _unread_lines(start: bytes, max_line: int) -> re.Pattern[bytes]:
    """One or more whole lines that begin with ``start``, none longer than ``max_line``.

    ``[^\\n]`` rather than ``[^\\r\\n]``: the regex engine runs a single excluded byte far
    faster than a class; a line that breaks the bound is left to the line-by-line path.
    """
    rest = max(0, max_line - _MAX_UNREAD_START - 1)
    return re.compile(rb"(?:%s[^\n]{0,%d}\n)+" % (start, rest))


@lru_cache(maxsize=8)
def _unread_break(start: bytes) -> re.Pattern[bytes]:
    """The end of a line after which the next does not begin with ``start``: the last line of
    a run of unread lines, found in one search (the regex engine jumps from LF to LF) where
    ``_unread_lines`` steps through its repeat line by line, at about a tenth of a microsecond
    each. For a buffer no longer than a line may be, where no line can break the bound."""
    return re.compile(rb"\n(?!%s)" % start)


@lru_cache(maxsize=8)
def _unread_with_literal(start: bytes, max_line: int) -> re.Pattern[bytes]:
    """The most common unread message's first line, alone: it begins with ``start``, holds no
    other brace, and ends in a plain literal announcement (``* 12 FETCH (UID 40 BODY[] {5120}``),
    whose size is group 1. Every line it matches ``_unread_lines`` matches too, and is read
    the same (see ``Framer._run``), in one step instead of four.
    """
    rest = max(0, max_line - _MAX_UNREAD_START - 1 - 23)  # 23: "{", 20 digits, "}", CR
    return re.compile(rb"(?:%s)[^\n{}]{0,%d}\{([0-9]{1,20})\}\r\n" % (start, rest))


def _announcing(data: bytes, pos: int, end: int) -> int:
    """The end of the first line in ``data[pos:end]`` (whole lines) that ends in "}", or -1."""
    while (brace := data.find(b"}", pos, end)) >= 0:
        after = data[brace + 1 : brace + 3]
        if after == b"\r\n":
            return brace + 3
        if after[:1] == b"\n":
            return brace + 2
        pos = brace + 1
    return -1


def _literal_size(data: bytes, start: int, end: int) -> int:
    """The size of the literal the line ``data[start:end]`` announces, or -1: the same reading
    as ``parse_announcement`` without building the line or a LiteralSpec (once per FETCH)."""
    close = end - 3 if data[end - 2 : end] == b"\r\n" else end - 2
    if close < start or data[close] != 0x7D:  # "}"
        return -1
    opening = data.rfind(b"{", max(start, close + 1 - _MAX_ANNOUNCEMENT), close)
    if opening < 0:
        return -1
    body = data[opening + 1 : close]
    if body[-1:] in (b"+", b"-"):
        body = body[:-1]
    if not body or not body.isdigit() or len(body) > 20:
        return -1
    return int(body)


class Framer:
    """Splits one direction of an IMAP connection into lines and literals.

    State is only: the unconsumed bytes, how much of the current literal is still to come, and
    the head of the current message. ``max_literal=None`` means literals are unbounded, which is
    safe for server responses because literal bytes are streamed, never accumulated.
    """

    def __init__(
        self,
        *,
        max_line: int = 1 << 20,
        max_literal: int | None = None,
        max_head: int = 8192,
        unread: bytes | None = None,
    ) -> None:
        if unread is not None and max_head:
            raise ValueError("unread messages have no head: use max_head=0")
        self.max_line = max_line
        self.max_literal = max_literal
        self.max_head = max_head
        self._unread = _unread_lines(unread, max_line) if unread is not None else None
        self._unread_break = _unread_break(unread) if unread is not None else None
        self._unread_literal = (
            _unread_with_literal(unread, max_line) if unread is not None else None
        )
        self.passing = unread is not None  # hand unread messages on as Unread (else as Lines)
        # The start of an unread message's first line, for a reader of ``short_lines``.
        self.unread_start = re.compile(unread) if unread is not None else None
        self._data = b""
        self._pos = 0
        self._scan = 0  # where to resume looking for LF in a partial line
        self._literal_left = 0
        self._in_message = False
        self._head = bytearray()
        self._truncated = False
        self._eof = False
        self._end_pending = False

    @property
    def in_message(self) -> bool:
        """True between the first byte of a message and its MessageEnd."""
        return self._in_message or self._pos < len(self._data)

    @property
    def ended(self) -> bool:
        """The peer closed the stream (``receive_data(b"")``)."""
        return self._eof

    @property
    def in_literal(self) -> bool:
        return self._literal_left > 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out as events."""
        return len(self._data) - self._pos

    def cancel_literal(self) -> None:
        """Forget the literal being waited for and the message it belongs to.

        For a synchronizing literal the server refused (it answered the command instead of
        sending ``+``): the client will not send it, and its next bytes start a new message.
        """
        self._literal_left = 0
        self._end_pending = False
        self._reset_message()

    def receive_data(self, data: bytes) -> None:
        """Add bytes from the peer; ``b""`` means the peer closed the stream."""
        if not data:
            self._eof = True
            return
        if self._pos >= len(self._data):
            self._data, self._pos, self._scan = data, 0, 0
        else:
            rest = self._data[self._pos :]
            self._scan -= self._pos
            self._data, self._pos = rest + data, 0

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA; raises FramingError for a stream we cannot frame."""
        if self._end_pending:
            self._end_pending = False
            message_end = MessageEnd(bytes(self._head), self._truncated)
            self._reset_message()
            return message_end
        # Called several times per message for every byte relayed: locals, no builtins calls.
        data, pos, left = self._data, self._pos, self._literal_left
        size = len(data)
        if pos >= size:
            if size:  # all handed out: an idle connection keeps no copy of its last read
                self._data, self._pos, self._scan = b"", 0, 0
            return self._need_data()
        if self.passing and self._unread is not None:
            end = self._run(data, pos, size)
            if end > pos:
                self._pos = self._scan = end
                return Unread(data if pos == 0 and end == size else data[pos:end])
            left = self._literal_left
        if left:
            end = pos + left if left < size - pos else size
            chunk = data[pos:end]  # the whole of ``data`` is not copied by CPython
            self._pos = self._scan = end
            self._literal_left = left - (end - pos)
            if self.max_head:
                self._add_head(chunk)
            return LiteralData(chunk)
        newline = data.find(b"\n", self._scan)  # _scan >= _pos always
        if newline < 0:
            if size - pos > self.max_line:
                raise LineTooLong(self.max_line)
            self._scan = size
            return self._need_data()
        end = newline + 1
        if end - pos > self.max_line:
            raise LineTooLong(self.max_line)
        line = data[pos:end]
        self._pos = self._scan = end
        first = not self._in_message
        spec = parse_announcement(line) if b"}" in line[-3:] else None
        if spec is not None and self.max_literal is not None and spec.size > self.max_literal:
            self._reset_message()
            raise LiteralTooLarge(spec, self.max_literal, line, first)
        if spec is not None:
            self._literal_left = spec.size
        if self.max_head:
            self._add_head(line)
            self._in_message = True
            self._end_pending = spec is None
        else:
            self._in_message = spec is not None
        return Line(line, first, spec)

    def short_lines(self) -> list[bytes] | None:
        """Everything held, as its lines, when that is a few whole messages of one line each
        (at most 16 lines and 4 KiB, no literal announced, between messages); else None, and
        nothing is taken. The lines are what ``next_event`` would hand out one by one, first
        lines all (each a whole message), unread ones included whether ``passing`` or not:
        ``unread_start`` tells them apart. For a reader of first lines only (``max_head ==
        0``): a reply or a SELECT's answer in one step instead of an event per line."""
        data, pos = self._data, self._pos
        size = len(data)
        if (
            size - pos > _SHORT
            or size - pos > self.max_line
            or pos >= size
            or data[size - 1] != 0x0A  # "\n": the last line is whole
            or self._literal_left
            or self._in_message
            or self.max_head
            or data.find(b"}\n", pos) >= 0
            or data.find(b"}\r\n", pos) >= 0
        ):
            return None
        if data.count(b"\n", pos) > _SHORT_LINES:  # a run of FETCHes: one regex, not one each
            return None
        lines = _WHOLE_LINES.findall(data, pos)
        self._data, self._pos, self._scan = b"", 0, 0
        return lines

    def whole_line(self) -> bytes | None:
        """Everything held, when that is one whole line that is a whole message (between
        messages, no literal announced, within ``max_line``); else None, and nothing is taken.
        It is what ``next_event`` would hand out as a first Line without a literal (and, with
        ``max_head``, the MessageEnd after it, whose head is the line's first ``max_head``
        bytes): a client's command in one step instead of three."""
        data, pos = self._data, self._pos
        size = len(data)
        if (
            pos >= size
            or data[size - 1] != 0x0A  # "\n": the line is whole
            or size - pos > self.max_line
            or self._in_message
            or self._literal_left
            or self._end_pending
            or data.find(b"\n", pos, size - 1) >= 0  # more than one line
            or data.find(b"}", size - 3) >= 0  # may announce a literal: next_event reads it
        ):
            return None
        self._data, self._pos, self._scan = b"", 0, 0
        return data if pos == 0 else data[pos:]

    def _run(self, data: bytes, pos: int, size: int) -> int:
        """Where the run of unread bytes from ``pos`` ends (``pos``: none); keeps the literal
        and message state at that point. Stops before anything it is not sure of (a line it
        must hand out, a partial line, a literal over the bound), which the caller then frames
        line by line as ever, bounds and errors included."""
        lines, whole, breaks = self._unread, self._unread_literal, self._unread_break
        starts = self.unread_start
        assert lines is not None
        assert whole is not None
        assert breaks is not None
        assert starts is not None
        left, in_message, max_line = self._literal_left, self._in_message, self.max_line
        max_literal = self.max_literal
        # No line of a buffer this short can break ``_unread_lines``'s bound: one search finds
        # where a run of unread lines ends (the same end, see ``_unread_break``).
        short = size - pos <= max_line - _MAX_UNREAD_START - 1
        while pos < size:
            if left:  # literal bytes, as many as there are
                step = left if left < size - pos else size - pos
                pos += step
                left -= step
                continue
            if in_message:  # a line after a literal of an unread message
                newline = data.find(b"\n", pos, pos + max_line)
                if newline < 0:
                    break
                start, end = pos, newline + 1
            else:  # first lines: a run of whole unread messages up to the first announcement
                # A FETCH of a body, the bulk of a sync: its first line, its literal and a
                # closing ")" line in one step (the same reading as the general path below).
                first = whole.match(data, pos)
                if first is not None:
                    literal = int(first[1])
                    if max_literal is None or literal <= max_literal:
                        pos, in_message = first.end() + literal, True
                        if pos > size:
                            left, pos = pos - size, size
                        elif data.startswith(b")\r\n", pos):
                            pos, in_message = pos + 3, False
                        continue
                if short:
                    if starts.match(data, pos) is None:
                        break
                    brk = breaks.search(data, pos, size)
                    run = brk.end() if brk is not None else data.rfind(b"\n", pos, size) + 1
                    if run <= pos:
                        break
                else:
                    match = lines.match(data, pos)
                    if match is None:
                        break
                    run = match.end()
                end = _announcing(data, pos, run)
                if end < 0:
                    pos = run
                    continue
                start = data.rfind(b"\n", pos, end - 1) + 1 or pos
            size_ = _literal_size(data, start, end)
            if size_ < 0:
                in_message = False
            elif self.max_literal is not None and size_ > self.max_literal:
                pos = start  # the line-by-line path refuses it
                break
            else:
                in_message, left = True, size_
            pos = end
        self._literal_left, self._in_message = left, in_message
        return pos

    def events(self) -> list[Event]:
        """All events available now; a convenience for tests and simple callers."""
        out: list[Event] = []
        while (event := self.next_event()) is not NEED_DATA:
            out.append(event)
        return out

    def _need_data(self) -> NeedData:
        if self._eof and (self._in_message or self._pos < len(self._data)):
            raise IncompleteMessage("stream ended inside a message")
        return NEED_DATA

    def _add_head(self, chunk: bytes) -> None:
        room = self.max_head - len(self._head)
        if room <= 0:
            self._truncated = True
        elif len(chunk) <= room:
            self._head += chunk
        else:
            self._head += chunk[:room]
            self._truncated = True

    def _reset_message(self) -> None:
        self._in_message = False
        self._head.clear()
        self._truncated = False
