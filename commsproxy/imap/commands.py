"""Spelling client commands: quoted strings, mailbox names, UID sets and literals on the wire.

A command is a tag, a name and arguments. Arguments are either text already in IMAP syntax
(atoms, quoted strings, parenthesised lists: see :func:`quote_string`) or a :class:`Literal`,
whose bytes travel as ``{n}`` + CRLF + data. :func:`command_chunks` cuts a command into the
pieces a client writes: after a synchronizing literal's announcement it must wait for the
server's ``+`` before sending the data, so each chunk says whether a wait follows. With LITERAL+
(RFC 7888) every literal goes at once as ``{n+}``; with LITERAL- only those up to 4096 bytes.
No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .mailbox_names import encode_name

__all__ = [
    "LITERAL_MINUS_MAX",
    "Arg",
    "Chunk",
    "Literal",
    "astring",
    "command_chunks",
    "expand_uid_set",
    "internal_date",
    "quote_mailbox",
    "quote_string",
    "uid_set",
]

LITERAL_MINUS_MAX = 4096  # RFC 7888: the largest non-synchronizing literal LITERAL- allows


@dataclass(frozen=True, slots=True)
class Literal:
    """Bytes sent as an IMAP literal: anything, including CR, LF and 8-bit data."""

    data: bytes


Arg = str | Literal


@dataclass(frozen=True, slots=True)
class Chunk:
    """Bytes to write; ``wait`` says the server's ``+`` must come before the next chunk."""

    data: bytes
    wait: bool


def quote_string(value: str) -> str:
    """``value`` as an IMAP quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string (modified UTF-7 for non-ASCII)."""
    return quote_string(encode_name(name))


def astring(value: str) -> Arg:
    """``value`` as a quoted string where one can carry it, else as a literal (UTF-8).

    Quoted strings cannot hold CR, LF, NUL or 8-bit characters; a password may.
    """
    if value.isascii() and not any(c in value for c in "\r\n\0"):
        return quote_string(value)
    return Literal(value.encode())


def uid_set(uids: Iterable[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1:3,7"``: short commands for long runs of UIDs."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("an empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


def expand_uid_set(text: str) -> list[int]:
    """``"3:5,9"`` → ``[3, 4, 5, 9]`` in the order written; ``5:3`` is the same set as ``3:5``."""
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        first, last = sorted((int(low), int(high or low)))
        out.extend(range(first, last + 1))
    return out


def command_chunks(
    tag: str,
    name: str,
    args: Sequence[Arg] = (),
    *,
    literal_plus: bool = False,
    literal_minus: bool = False,
) -> list[Chunk]:
    """The pieces of one command as the client writes them, CRLF included."""
    chunks: list[Chunk] = []
    current = bytearray(f"{tag} {name}".encode())
    for arg in args:
        current += b" "
        if isinstance(arg, str):
            current += arg.encode()
            continue
        size = len(arg.data)
        if literal_plus or (literal_minus and size <= LITERAL_MINUS_MAX):
            current += b"{%d+}\r\n" % size
            current += arg.data
            continue
        current += b"{%d}\r\n" % size
        chunks.append(Chunk(bytes(current), wait=True))
        current = bytearray(arg.data)
    current += b"\r\n"
    chunks.append(Chunk(bytes(current), wait=False))
    return chunks


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def internal_date(moment: datetime) -> str:
    """``moment`` as a quoted date-time for APPEND: ``" 2-Jan-2020 12:00:00 +0100"``.

    Month names are spelled here, not by strftime, whose ``%b`` follows the locale. A naive
    datetime is taken as local time.
    """
    aware = moment if moment.tzinfo is not None else moment.astimezone()
    offset = aware.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    return (
        f'"{aware.day:2d}-{_MONTHS[aware.month - 1]}-{aware.year:04d} '
        f'{aware.hour:02d}:{aware.minute:02d}:{aware.second:02d} {zone}"'
    )
