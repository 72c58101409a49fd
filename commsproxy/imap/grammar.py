"""Reading the few IMAP commands and responses the proxy must understand.

The relay passes everything through; it only needs the tag and name of each command, a mailbox
or user name argument for a handful of them, and the kind, tag, number and response code of each
response. This module turns the head of a framed message (see framer.py) into those typed values.
It is lenient by design: a command we cannot read is still forwarded, and the upstream server,
which owns the grammar, answers it with BAD.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache

from .framer import parse_announcement
from .mailbox_names import canonical, decode_name

__all__ = [
    "Atom",
    "Command",
    "ParseError",
    "Response",
    "ResponseKind",
    "Token",
    "code_number",
    "decode_mailbox",
    "parse_command",
    "parse_response",
    "sasl_plain_credentials",
    "sasl_plain_user",
    "tokenize",
]


class ParseError(ValueError):
    """The bytes are not an IMAP command or response at all."""


class Atom(str):
    """An unquoted IMAP atom (including NIL and flags); strings are bytes, lists are tuples."""

    __slots__ = ()


Token = Atom | bytes | tuple["Token", ...]

# What ends an atom here. Lenient on purpose: list wildcards "%*" and the backslash of system
# flags (\Seen) stay inside atoms; "]" ends one because response codes are bracketed. Atoms and
# plain quoted strings are found by regular expressions, not byte by byte in Python: every
# client command and every response the upstream client reads goes through here.
_ATOM = re.compile(rb'[^(){ "\]\r\n]+')
_PLAIN_QUOTED = re.compile(rb'([^"\\\r\n]*)"')  # the rest of a quoted string without escapes


def tokenize(data: bytes, pos: int = 0) -> list[Token]:
    """Tokens of a message, literals inlined as strings; stops at what it cannot read."""
    tokens, _ = _tokens(data, pos, closing=None)
    return tokens


def _tokens(data: bytes, pos: int, closing: int | None) -> tuple[list[Token], int]:
    out: list[Token] = []
    n = len(data)
    while pos < n:
        c = data[pos]
        if c in b" \r\n":
            pos += 1
        elif closing is not None and c == closing:
            return out, pos + 1
        elif c in b"([":
            inner, pos = _tokens(data, pos + 1, closing=0x29 if c == 0x28 else 0x5D)
            out.append(tuple(inner))
        elif c == 0x22:  # quoted string
            value, pos = _quoted(data, pos + 1)
            if value is None:
                return out, n
            out.append(value)
        elif c == 0x7B or (c == 0x7E and data[pos + 1 : pos + 2] == b"{"):  # {n} or ~{n}
            literal = _literal(data, pos)
            if literal is None:
                return out, n
            value, pos = literal
            out.append(value)
        else:
            atom = _ATOM.match(data, pos)
            if atom is None:  # a stray special such as ")" or "]": skip it
                pos += 1
                continue
            pos = atom.end()
            out.append(Atom(atom.group().decode("utf-8", "replace")))
    return out, pos


def _quoted(data: bytes, pos: int) -> tuple[bytes | None, int]:
    plain = _PLAIN_QUOTED.match(data, pos)
    if plain is not None:
        return plain.group(1), plain.end()
    value = bytearray()
    n = len(data)
    while pos < n:
        c = data[pos]
        if c == 0x5C and pos + 1 < n:  # backslash escapes " and \
            value.append(data[pos + 1])
            pos += 2
        elif c == 0x22:
            return bytes(value), pos + 1
        elif c in b"\r\n":
            break
        else:
            value.append(c)
            pos += 1
    return None, n


def _literal(data: bytes, pos: int) -> tuple[bytes, int] | None:
    newline = data.find(b"\n", pos)
    if newline < 0:
        return None
    spec = parse_announcement(data[pos : newline + 1])
    if spec is None:
        return None
    start = newline + 1
    if start + spec.size > len(data):  # truncated head: the literal is incomplete
        return None
    return data[start : start + spec.size], start + spec.size


def decode_mailbox(raw: bytes) -> str:
    """A mailbox name from the wire (modified UTF-7); INBOX is case-insensitive."""
    return canonical(decode_name(raw))


# Where the mailbox argument stands, by command; COPY/MOVE name their destination second.
_MAILBOX_ARG: dict[str, int] = {
    "SELECT": 0,
    "EXAMINE": 0,
    "STATUS": 0,
    "APPEND": 0,
    "CREATE": 0,
    "DELETE": 0,
    "SUBSCRIBE": 0,
    "UNSUBSCRIBE": 0,
    "RENAME": 0,
    "COPY": 1,
    "MOVE": 1,
    "UID COPY": 1,
    "UID MOVE": 1,
}


@dataclass(frozen=True, slots=True)
class Command:
    """A client command: its tag, its name (``UID MOVE`` for UID commands) and its arguments."""

    tag: str
    name: str
    args: tuple[Token, ...]
    # The mailbox the command acts on (the destination for COPY/MOVE), if it names one: read
    # once here, as the session machine and the gate both ask for it.
    mailbox: str | None = field(init=False, compare=False)

    def __post_init__(self) -> None:
        index = _MAILBOX_ARG.get(self.name)
        mailbox = None
        if index is not None and index < len(self.args):
            token = self.args[index]
            if not isinstance(token, tuple):
                mailbox = _cached_mailbox(token) if len(token) <= 256 else _mailbox(token)
        object.__setattr__(self, "mailbox", mailbox)

    @property
    def login_user(self) -> str | None:
        """The user name of a LOGIN command (the password is never kept)."""
        if self.name != "LOGIN" or not self.args:
            return None
        return _astring(self.args[0])


def _astring(token: Token) -> str | None:
    if isinstance(token, tuple):
        return None
    if isinstance(token, bytes):
        return token.decode("utf-8", "replace")
    return str(token)


def _mailbox(token: str | bytes) -> str:
    return decode_mailbox(token if isinstance(token, bytes) else token.encode())


# A client names the same few mailboxes in command after command: each is read once (the
# short ones: a cache of at most 256 names of at most 256 characters).
_cached_mailbox = lru_cache(maxsize=256)(_mailbox)


# The commonest commands, read without tokenizing: a tag and a name (NOOP, IDLE, CHECK) and at
# most one plain atom (SELECT INBOX). What does not match goes through ``tokenize``, which reads
# these the same way (test_grammar.py checks that).
_PLAIN_COMMAND = re.compile(
    rb"([A-Za-z0-9.+_-]{1,64}) ([A-Za-z]{1,24})(?: ([A-Za-z0-9._-]{1,64}))?\r?\n?"
)


def parse_command(head: bytes) -> Command:
    """The command at the start of ``head`` (a whole message, literals inline)."""
    plain = _PLAIN_COMMAND.fullmatch(head)
    if plain is not None and (parts := _plain_parts(plain[2], plain[3])) is not None:
        return Command(plain[1].decode("ascii"), *parts)
    return _parse_tokens(head)


@lru_cache(maxsize=256)
def _plain_parts(name: bytes, arg: bytes | None) -> tuple[str, tuple[Token, ...]] | None:
    """A plain command's name and arguments (None for UID, which names its command next):
    the same few come again and again (NOOP, SELECT INBOX), so they are read once."""
    if name.upper() == b"UID":
        return None
    args = (Atom(arg.decode("ascii")),) if arg is not None else ()
    return name.upper().decode("ascii"), args


def _parse_tokens(head: bytes) -> Command:
    tokens = tokenize(head)
    if len(tokens) < 2 or not isinstance(tokens[0], Atom) or not isinstance(tokens[1], Atom):
        raise ParseError("not a command: expected a tag and a command name")
    tag, name = str(tokens[0]), tokens[1].upper()
    args = tuple(tokens[2:])
    if name == "UID" and args and isinstance(args[0], Atom):
        name, args = f"UID {args[0].upper()}", args[1:]
    return Command(tag, name, args)


class ResponseKind(Enum):
    TAGGED = "tagged"
    UNTAGGED = "untagged"
    CONTINUATION = "continuation"


@dataclass(slots=True)  # made for every response: not frozen, for speed; treat as read-only
class Response:
    """The first line of a server response, read just far enough for the relay.

    ``name`` is the status (OK, NO, BAD, BYE, PREAUTH) or the data name (CAPABILITY, EXISTS,
    EXPUNGE, FETCH, VANISHED, ...); ``number`` is the message number or count in front of a
    numeric response; ``code`` is the response code atom inside ``[...]``, if any, and
    ``value`` the number that follows it in an untagged status (``* OK [UIDNEXT 42]``).
    """

    kind: ResponseKind
    tag: str | None
    name: str
    number: int | None = None
    code: str | None = None
    value: int | None = None


_STATUSES = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_TAGGED, _UNTAGGED, _CONTINUATION = ResponseKind  # looked up once, not per response


def parse_response(line: bytes) -> Response:
    """The response whose first line is ``line``.

    Short untagged lines come back from a cache: a client that selects INBOX again and again
    gets the same ``* n EXISTS``, ``* OK [UIDNEXT n]`` and ``* OK [CLOSED]`` each time. The
    Response is shared then; like every Response it is read-only.
    """
    if line[:2] == b"* " and len(line) <= _CACHED_LINE:
        return _parse_untagged(line)
    return _parse_response(line)


_CACHED_LINE = 128


@lru_cache(maxsize=256)
def _parse_untagged(line: bytes) -> Response:
    return _parse_response(line)


def _parse_response(line: bytes) -> Response:
    if line[:1] == b"+":
        return Response(_CONTINUATION, None, "+")
    parts = line.split(None, 3)  # on whitespace, so the line ending goes too
    if len(parts) < 2 or line[:1].isspace():
        raise ParseError("not a response: expected a tag and a name")
    number: int | None = None
    if parts[0] == b"*":
        kind, tag = _UNTAGGED, None
        if parts[1].isdigit() and len(parts) > 2:
            number = int(parts[1])
            del parts[1]
    else:
        kind, tag = _TAGGED, parts[0].decode("ascii", "replace")
    name = parts[1].upper().decode("ascii", "replace")
    code: str | None = None
    value: int | None = None
    if len(parts) > 2 and parts[2][:1] == b"[" and name in _STATUSES:
        code = parts[2][1:].split(b"]", 1)[0].upper().decode("ascii", "replace")
        if tag is None:
            value = code_number(line)
    return Response(kind, tag, name, number, code, value)


def code_number(line: bytes) -> int | None:
    """The number in a response code such as ``* OK [UIDNEXT 42] ...``; None if there is none."""
    start = line.find(b"[")
    end = line.find(b"]", start)
    parts = line[start + 1 : end].split() if 0 <= start < end else []
    return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None


def sasl_plain_credentials(line: bytes) -> tuple[str, str] | None:
    """Who logs in with a SASL PLAIN response line (the authorization identity if given, else
    the authentication identity) and the password, for the caller to keep in memory only."""
    try:
        decoded = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    fields = decoded.split(b"\0")
    if len(fields) != 3:
        return None
    authzid, authcid, password = fields
    user = (authzid or authcid).decode("utf-8", "replace")
    return (user, password.decode("utf-8", "replace")) if user else None


def sasl_plain_user(line: bytes) -> str | None:
    """The user of a SASL PLAIN response line (the password is dropped)."""
    credentials = sasl_plain_credentials(line)
    return credentials[0] if credentials else None
