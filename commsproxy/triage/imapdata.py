"""Reading the engine's IMAP responses into typed values: pure functions, no I/O.

aioimaplib hands back a command's response as a list of lines with the ``* `` removed and each
literal as a separate ``bytearray``. These functions put a response back together and read it
with the proxy's own tokenizer, so one grammar serves both the relay and the engine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..imap.grammar import Atom, Token, decode_mailbox, tokenize
from ..imap.mailbox_names import encode_name

__all__ = [
    "Fetched",
    "ListedMailbox",
    "MailboxInfo",
    "parse_appenduid",
    "parse_copyuid",
    "parse_fetch",
    "parse_foreign_namespaces",
    "parse_list",
    "parse_namespace",
    "parse_search",
    "parse_select",
    "parse_status",
    "parse_status_messages",
    "quote_mailbox",
    "quote_string",
    "uid_set",
]

_FETCH_START = re.compile(rb"^\d+ FETCH \(")
_CODE_NUMBER = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]", re.IGNORECASE)
_EXISTS = re.compile(rb"^(\d+) EXISTS", re.IGNORECASE)
_COPYUID = re.compile(rb"\[COPYUID \d+ ([\d:,]+) ([\d:,]+)\]", re.IGNORECASE)
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]", re.IGNORECASE)
_STATUS_ITEM = re.compile(rb"\b(MESSAGES|UIDNEXT|UIDVALIDITY|UNSEEN|RECENT) (\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    exists: int
    uidvalidity: int
    uidnext: int | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """One message of a FETCH: what the engine asked for, absent parts empty."""

    uid: int
    flags: frozenset[str]
    size: int | None = None
    header: bytes = b""
    text: bytes = b""
    internaldate: str | None = None

    @property
    def raw(self) -> bytes:
        """The header and the (possibly partial) body as one message for the classifier."""
        return self.header + self.text


@dataclass(frozen=True, slots=True)
class ListedMailbox:
    name: str
    delimiter: str | None
    attributes: frozenset[str]


def quote_string(value: str) -> str:
    """``value`` as an IMAP quoted string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string (modified UTF-7 for non-ASCII)."""
    return quote_string(encode_name(name))


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


def _messages(lines: Sequence[bytes | bytearray]) -> Iterator[bytes]:
    """Each FETCH response re-joined into one message, literals inline after ``{n}\\r\\n``."""
    current: list[bytes] | None = None
    for line in lines:
        if isinstance(line, bytearray):
            if current is not None:
                current.append(b"\r\n" + bytes(line))
            continue
        if _FETCH_START.match(line):
            if current is not None:
                yield b"".join(current)
            current = [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        yield b"".join(current)


def _flags(token: Token) -> frozenset[str]:
    if not isinstance(token, tuple):
        return frozenset()
    return frozenset(str(flag) for flag in token if isinstance(flag, str | bytes) and flag)


def _number(token: Token | None) -> int | None:
    if isinstance(token, Atom) and token.isdigit():
        return int(token)
    return None


def _body(token: Token | None) -> bytes:
    return token if isinstance(token, bytes) else b""


def parse_fetch(lines: Sequence[bytes | bytearray]) -> list[Fetched]:
    """The messages of a ``UID FETCH`` response (those without a UID are left out)."""
    out: list[Fetched] = []
    for message in _messages(lines):
        tokens = tokenize(message)
        if len(tokens) < 3 or not isinstance(tokens[2], tuple):
            continue
        items = list(tokens[2])
        values: dict[str, Token] = {}
        i = 0
        while i < len(items):
            key = items[i]
            i += 1
            if not isinstance(key, Atom):
                continue
            name = key.upper()
            if "[" in name and not name.endswith("]"):
                name += "]"  # the tokenizer ends an atom at "]": BODY[HEADER] reads as BODY[HEADER
            if name.startswith("BODY[HEADER.FIELDS") and i < len(items):
                # BODY[HEADER.FIELDS (FROM TO)]: the field list comes as its own token
                if isinstance(items[i], tuple):
                    i += 1
                name = "BODY[HEADER]"
            nxt = items[i] if i < len(items) else None
            if isinstance(nxt, Atom) and nxt.startswith("<"):  # a partial fetch's <origin>
                i += 1
            if i < len(items):
                values[name] = items[i]
                i += 1
        uid = _number(values.get("UID"))
        if uid is None:
            continue
        date = values.get("INTERNALDATE")
        out.append(
            Fetched(
                uid=uid,
                flags=_flags(values.get("FLAGS", ())),
                size=_number(values.get("RFC822.SIZE")),
                header=_body(values.get("BODY[HEADER]")),
                text=_body(values.get("BODY[TEXT]")) or _body(values.get("BODY[]")),
                internaldate=date.decode() if isinstance(date, bytes) else None,
            )
        )
    return out


def parse_search(lines: Sequence[bytes | bytearray]) -> list[int]:
    """UIDs of a ``UID SEARCH`` (aioimaplib keeps only the numbers; the last line is the
    completion text)."""
    uids: list[int] = []
    for line in lines[:-1]:
        if isinstance(line, bytes):
            words = line.split()
            if words[:1] == [b"SEARCH"]:
                words = words[1:]
            uids.extend(int(word) for word in words if word.isdigit())
    return uids


def parse_select(lines: Sequence[bytes | bytearray]) -> MailboxInfo:
    exists, uidvalidity, uidnext = 0, 0, None
    for line in lines:
        if not isinstance(line, bytes):
            continue
        match = _EXISTS.match(line)
        if match:
            exists = int(match.group(1))
        for code in _CODE_NUMBER.finditer(line):
            if code.group(1).upper() == b"UIDVALIDITY":
                uidvalidity = int(code.group(2))
            else:
                uidnext = int(code.group(2))
    return MailboxInfo(exists, uidvalidity, uidnext)


def parse_status_messages(lines: Sequence[bytes | bytearray]) -> int | None:
    return parse_status(lines).get("MESSAGES")


def parse_list(lines: Sequence[bytes | bytearray]) -> list[ListedMailbox]:
    out: list[ListedMailbox] = []
    pending: bytes | None = None
    for line in lines:
        if isinstance(line, bytearray):  # a mailbox name sent as a literal
            if pending is not None:
                out.extend(_list_item(pending + b"\r\n" + bytes(line)))
                pending = None
            continue
        if line[:5].upper() == b"LIST ":
            line = line[5:]
        if not line.startswith(b"("):
            continue
        if line.endswith(b"}"):
            pending = line
            continue
        out.extend(_list_item(line))
    return out


def _list_item(line: bytes) -> list[ListedMailbox]:
    tokens = tokenize(line)  # (attributes) "delimiter" name
    if len(tokens) < 3 or not isinstance(tokens[0], tuple):
        return []
    attributes, delimiter, name = tokens[0], tokens[1], tokens[2]
    if isinstance(name, tuple):
        return []
    raw = name if isinstance(name, bytes) else str(name).encode()
    return [
        ListedMailbox(
            name=decode_mailbox(raw),
            delimiter=delimiter.decode() if isinstance(delimiter, bytes) else None,
            attributes=frozenset(str(a).lower() for a in attributes if isinstance(a, str)),
        )
    ]


def _expand(uids: bytes) -> list[int]:
    out: list[int] = []
    for part in uids.split(b","):
        low, _, high = part.partition(b":")
        first, last = sorted((int(low), int(high or low)))  # 5:3 is the same set as 3:5
        out.extend(range(first, last + 1))
    return out


def parse_copyuid(lines: Sequence[bytes | bytearray]) -> dict[int, int]:
    """Source UID -> new UID from a ``[COPYUID v src dst]`` response code (UIDPLUS)."""
    for line in reversed(lines):
        match = _COPYUID.search(bytes(line))
        if match:
            return dict(zip(_expand(match.group(1)), _expand(match.group(2)), strict=False))
    return {}


def parse_appenduid(lines: Sequence[bytes | bytearray]) -> int | None:
    """The new UID from an ``[APPENDUID v uid]`` response code (UIDPLUS), or None."""
    for line in reversed(lines):
        match = _APPENDUID.search(bytes(line))
        if match:
            return int(match.group(1))
    return None


def parse_status(lines: Sequence[bytes | bytearray]) -> dict[str, int]:
    """``STATUS name (MESSAGES 3 UIDNEXT 9)`` → ``{"MESSAGES": 3, "UIDNEXT": 9}``."""
    for line in lines[:-1]:
        if isinstance(line, bytes) and b"(" in line:
            items = line[line.rindex(b"(") :]
            found = {k.decode().upper(): int(v) for k, v in _STATUS_ITEM.findall(items)}
            if found:
                return found
    return {}


def parse_foreign_namespaces(lines: Sequence[bytes | bytearray]) -> tuple[str, ...]:
    """Prefixes of the other users' and the shared namespaces in a NAMESPACE response.

    ``NAMESPACE (("" "/")) (("Shared/" "/")) (("Public/" "/"))`` -> ``("Shared/", "Public/")``:
    mail there is someone else's, not the user's own.
    """
    tokens = _namespace_tokens(lines)
    if tokens is None:
        return ()
    prefixes: list[str] = []
    for group in tokens[1:3]:
        for namespace in group if isinstance(group, tuple) else ():
            if isinstance(namespace, tuple) and namespace and isinstance(namespace[0], bytes):
                prefix = decode_mailbox(namespace[0])
                if prefix:
                    prefixes.append(prefix)
    return tuple(prefixes)


def parse_namespace(lines: Sequence[bytes | bytearray]) -> tuple[str | None, str | None]:
    """The first public namespace's (prefix, delimiter) from a NAMESPACE response, or Nones.

    ``NAMESPACE (("" "/")) NIL (("Public/" "/"))``: personal, other users', shared.
    """
    tokens = _namespace_tokens(lines)
    if tokens is None or len(tokens) < 3 or not isinstance(tokens[2], tuple) or not tokens[2]:
        return None, None
    first = tokens[2][0]
    if not isinstance(first, tuple) or len(first) < 2:
        return None, None
    prefix, delimiter = first[0], first[1]
    return (
        decode_mailbox(prefix) if isinstance(prefix, bytes) else None,
        delimiter.decode() if isinstance(delimiter, bytes) else None,
    )


def _namespace_tokens(lines: Sequence[bytes | bytearray]) -> list[Token] | None:
    """The tokens of the first NAMESPACE response line (personal, other users', shared)."""
    for line in lines:
        if not isinstance(line, bytes):
            continue
        text = line[10:] if line[:10].upper() == b"NAMESPACE " else line
        if text.startswith((b"(", b"NIL")):
            return tokenize(text)
    return None
