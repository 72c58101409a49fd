"""Typed values from whole server responses: what a command's answer says, read with the grammar.

A client frames the server's byte stream (framer.py) into messages: each a whole response as it
came on the wire, first line, literals inline after their ``{n}`` + CRLF, and the rest. The
readers here take those messages -- the untagged ones a command brought, usually followed by its
tagged completion -- pick the responses they understand by name and read them with the grammar's
tokenizer, so a literal's bytes (a header saying ``2 FETCH (UID 99)``) are never read as
protocol. They are lenient: a response they cannot read is skipped, never an error. No I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from .commands import expand_uid_set
from .grammar import Atom, Token, decode_mailbox, tokenize

__all__ = [
    "Fetched",
    "ListedMailbox",
    "MailboxInfo",
    "Reply",
    "parse_appenduid",
    "parse_capabilities",
    "parse_copyuid",
    "parse_fetch",
    "parse_foreign_namespaces",
    "parse_list",
    "parse_namespace",
    "parse_search",
    "parse_select",
    "parse_status",
    "parse_status_messages",
    "read_completion",
    "untagged_name",
]

_STATUSES = frozenset({"OK", "NO", "BAD", "BYE", "PREAUTH"})
_STATUS_ITEMS = frozenset({"MESSAGES", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "RECENT"})


@dataclass(frozen=True, slots=True)
class Reply:
    """A command's answer: its tagged completion and the untagged responses that came with it.

    ``code`` is the name of the response code in brackets (``TRYCREATE``, ``EXPUNGEISSUED``),
    upper-cased; ``text`` the human-readable rest of the tagged line.
    """

    tag: str
    status: str
    code: str | None
    text: str
    line: bytes
    untagged: tuple[bytes, ...] = ()

    @property
    def messages(self) -> tuple[bytes, ...]:
        """The untagged responses, then the tagged line: what the readers below take."""
        return (*self.untagged, self.line)


def read_completion(line: bytes, untagged: Sequence[bytes] = ()) -> Reply:
    """The :class:`Reply` whose tagged line is ``line`` (``a1 NO [TRYCREATE] No such mailbox``)."""
    parts = line.split(None, 2)
    tag = parts[0].decode("ascii", "replace") if parts else ""
    status = parts[1].upper().decode("ascii", "replace") if len(parts) > 1 else ""
    rest = parts[2] if len(parts) > 2 else b""
    code: str | None = None
    if rest.startswith(b"["):
        inside, _, after = rest[1:].partition(b"]")
        name = inside.split(None, 1)
        code = name[0].upper().decode("ascii", "replace") if name else None
        rest = after
    text = rest.strip().decode("utf-8", "replace")
    return Reply(tag, status, code, text, line, tuple(untagged))


def untagged_name(message: bytes) -> tuple[int | None, str] | None:
    """``(12, "FETCH")`` for ``* 12 FETCH (...)``, ``(None, "OK")`` for ``* OK ...``; None for
    a tagged line or a continuation. Reads only the first few bytes."""
    if not message.startswith(b"* "):
        return None
    words = message[2:48].split(None, 2)
    if not words:
        return None
    if words[0].isdigit() and len(words) > 1:
        return int(words[0]), words[1].upper().decode("ascii", "replace")
    return None, words[0].upper().decode("ascii", "replace")


def _untagged(messages: Sequence[bytes], name: str) -> Iterator[list[Token]]:
    """The tokens after ``* [number] NAME`` of each untagged ``name`` response."""
    for message in messages:
        kind = untagged_name(message)
        if kind is not None and kind[1] == name:
            tokens = tokenize(message)
            yield tokens[3:] if kind[0] is not None else tokens[2:]


def _code(message: bytes) -> tuple[str, tuple[Token, ...]] | None:
    """The bracketed response code of a status response (tagged or untagged): its upper-cased
    name and its arguments as tokens."""
    tokens = tokenize(message)
    if len(tokens) >= 3 and isinstance(tokens[1], Atom) and tokens[1].upper() in _STATUSES:
        code = tokens[2]
        if isinstance(code, tuple) and code and isinstance(code[0], Atom):
            return code[0].upper(), code[1:]
    return None


# -- mailbox state ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailboxInfo:
    exists: int
    uidvalidity: int
    uidnext: int | None


def parse_select(messages: Sequence[bytes]) -> MailboxInfo:
    """EXISTS, UIDVALIDITY and UIDNEXT of a SELECT or EXAMINE answer."""
    exists, uidvalidity, uidnext = 0, 0, None
    for message in messages:
        kind = untagged_name(message)
        if kind is None:
            continue
        number, name = kind
        if name == "EXISTS" and number is not None:
            exists = number
        elif name == "OK" and b"[UID" in message[:32].upper():
            code = _code(message)
            value = _number(code[1][0]) if code and code[1] else None
            if code is not None and value is not None:
                if code[0] == "UIDVALIDITY":
                    uidvalidity = value
                elif code[0] == "UIDNEXT":
                    uidnext = value
    return MailboxInfo(exists, uidvalidity, uidnext)


def parse_status(messages: Sequence[bytes]) -> dict[str, int]:
    """``* STATUS name (MESSAGES 3 UIDNEXT 9)`` → ``{"MESSAGES": 3, "UIDNEXT": 9}``."""
    for tokens in _untagged(messages, "STATUS"):
        if len(tokens) < 2 or not isinstance(tokens[1], tuple):
            continue
        items = tokens[1]
        found = {
            str(key).upper(): int(value)
            for key, value in zip(items[::2], items[1::2], strict=False)
            if isinstance(key, Atom)
            and key.upper() in _STATUS_ITEMS
            and isinstance(value, Atom)
            and value.isdigit()
        }
        if found:
            return found
    return {}


def parse_status_messages(messages: Sequence[bytes]) -> int | None:
    return parse_status(messages).get("MESSAGES")


def parse_search(messages: Sequence[bytes]) -> list[int]:
    """The numbers of every ``* SEARCH`` response, in order."""
    uids: list[int] = []
    for message in messages:
        kind = untagged_name(message)
        if kind is not None and kind == (None, "SEARCH"):
            uids.extend(int(word) for word in message.split()[2:] if word.isdigit())
    return uids


def parse_capabilities(message: bytes) -> frozenset[str] | None:
    """Upper-cased capabilities of ``* CAPABILITY ...`` or a ``[CAPABILITY ...]`` code."""
    kind = untagged_name(message)
    if kind == (None, "CAPABILITY"):
        return frozenset(word.upper() for word in message.decode("ascii", "replace").split()[2:])
    if b"[CAPABILITY " not in message[:64].upper():
        return None
    code = _code(message)
    if code is None or code[0] != "CAPABILITY":
        return None
    return frozenset(word.upper() for word in code[1] if isinstance(word, Atom))


# -- FETCH -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetched:
    """One message of a FETCH: what was asked for, absent parts empty."""

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


def _fetch_items(items: tuple[Token, ...]) -> dict[str, Token]:
    """Name → value of a FETCH item list; ``BODY[HEADER.FIELDS (...)]`` reads as BODY[HEADER]."""
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
            if isinstance(items[i], tuple):  # the field list comes as its own token
                i += 1
            name = "BODY[HEADER]"
        nxt = items[i] if i < len(items) else None
        if isinstance(nxt, Atom) and nxt.startswith("<"):  # a partial fetch's <origin>
            i += 1
        if i < len(items):
            values[name] = items[i]
            i += 1
    return values


def parse_fetch(messages: Sequence[bytes]) -> list[Fetched]:
    """The messages of a ``UID FETCH`` answer (those without a UID are left out).

    The shapes triage asks for thousands of at a time (``UID``, ``FLAGS``, ``RFC822.SIZE``
    and body literals, as the server writes them) are read by :func:`_fetch_fast`; anything
    else, or anything unusual in them, by the tokenizer, with the same result."""
    out: list[Fetched] = []
    fast = _fetch_fast
    for message in messages:
        fetched = fast(message)
        if fetched is None:
            out += _fetch_tokenized((message,))
        elif fetched is not _SKIPPED:
            out.append(fetched)
    return out


def _fetch_tokenized(messages: Sequence[bytes]) -> list[Fetched]:
    """:func:`parse_fetch` by the tokenizer: every shape the grammar reads."""
    out: list[Fetched] = []
    for tokens in _untagged(messages, "FETCH"):
        if not tokens or not isinstance(tokens[0], tuple):
            continue
        values = _fetch_items(tokens[0])
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
                internaldate=date.decode("utf-8", "replace") if isinstance(date, bytes) else None,
            )
        )
    return out


# The common FETCH shapes, item by item: a number, a flag list of plain atoms, or a body
# section with a synchronizing literal. Anything else (quoted strings, NIL, lower case,
# HEADER.FIELDS, INTERNALDATE, a flag with a special in it) goes to the tokenizer.
_FAST_HEAD = re.compile(rb"\* \d{1,20} FETCH \(")
_FAST_ITEM = re.compile(
    rb"(?P<number>UID|RFC822\.SIZE) (?P<value>\d+)"
    rb"|FLAGS \((?P<flags>[^()\[\]{}\"\r\n]*)\)"
    rb"|BODY\[(?P<section>HEADER|TEXT|)\](?:<\d+>)? \{(?P<size>\d{1,20})\}\r\n"
)
_FAST_ENDS = (b")\r\n", b")\n", b")")
_SKIPPED = Fetched(0, frozenset())  # a FETCH the fast path read that names no UID


def _fetch_fast(message: bytes) -> Fetched | None:
    """One FETCH response of a common shape, read with regular expressions and slices; None
    when it is not of one (then the tokenizer reads it)."""
    head = _FAST_HEAD.match(message)
    if head is None:
        return None
    pos, end = head.end(), len(message)
    uid: int | None = None
    size: int | None = None
    flags: frozenset[str] = frozenset()
    sections: dict[bytes, bytes] = {}
    item = _FAST_ITEM.match
    while True:
        found = item(message, pos)
        if found is None:
            return None
        pos = found.end()
        number = found["number"]
        if number == b"UID":
            uid = int(found["value"])
        elif number is not None:
            size = int(found["value"])
        elif found["size"] is None:
            listed = found["flags"]
            flags = frozenset(f.decode("utf-8", "replace") for f in listed.split(b" ") if f)
        else:
            stop = pos + int(found["size"])
            if stop > end:
                return None
            sections[found["section"]] = message[pos:stop]
            pos = stop
        if message[pos : pos + 1] == b" ":
            pos += 1
        elif message[pos:] in _FAST_ENDS:
            break
        else:
            return None
    if uid is None:
        return _SKIPPED
    return Fetched(
        uid=uid,
        flags=flags,
        size=size,
        header=sections.get(b"HEADER", b""),
        text=sections.get(b"TEXT", b"") or sections.get(b"", b""),
    )


# -- LIST and NAMESPACE ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListedMailbox:
    """A mailbox as LIST gave it; ``attributes`` lower-cased (``\\hasnochildren``, ``\\sent``)."""

    name: str
    delimiter: str | None
    attributes: frozenset[str]
    # As the server spells it (modified UTF-7), for commands; not part of what a mailbox is.
    wire_name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.wire_name:
            object.__setattr__(self, "wire_name", self.name)


def parse_list(messages: Sequence[bytes]) -> list[ListedMailbox]:
    """``* LIST (attributes) "delimiter" name`` responses; a name may come as a literal."""
    out: list[ListedMailbox] = []
    for tokens in _untagged(messages, "LIST"):
        if len(tokens) < 3 or not isinstance(tokens[0], tuple):
            continue
        attributes, delimiter, name = tokens[0], tokens[1], tokens[2]
        if isinstance(name, tuple):
            continue
        raw = name if isinstance(name, bytes) else str(name).encode()
        out.append(
            ListedMailbox(
                name=decode_mailbox(raw),
                delimiter=delimiter.decode() if isinstance(delimiter, bytes) else None,
                attributes=frozenset(str(a).lower() for a in attributes if isinstance(a, str)),
                wire_name=raw.decode("utf-8", "replace"),
            )
        )
    return out


def _namespace_groups(messages: Sequence[bytes]) -> list[Token] | None:
    """The three groups of the first NAMESPACE response: personal, other users', shared."""
    for tokens in _untagged(messages, "NAMESPACE"):
        return tokens
    return None


def parse_foreign_namespaces(messages: Sequence[bytes]) -> tuple[str, ...]:
    """Prefixes of the other users' and the shared namespaces in a NAMESPACE answer.

    ``NAMESPACE (("" "/")) (("Shared/" "/")) (("Public/" "/"))`` -> ``("Shared/", "Public/")``:
    mail there is someone else's, not the user's own.
    """
    groups = _namespace_groups(messages)
    if groups is None:
        return ()
    prefixes: list[str] = []
    for group in groups[1:3]:
        for namespace in group if isinstance(group, tuple) else ():
            if isinstance(namespace, tuple) and namespace and isinstance(namespace[0], bytes):
                prefix = decode_mailbox(namespace[0])
                if prefix:
                    prefixes.append(prefix)
    return tuple(prefixes)


def parse_namespace(messages: Sequence[bytes]) -> tuple[str | None, str | None]:
    """The first shared namespace's (prefix, delimiter) from a NAMESPACE answer, or Nones.

    ``NAMESPACE (("" "/")) NIL (("Public/" "/"))``: personal, other users', shared.
    """
    groups = _namespace_groups(messages)
    if groups is None or len(groups) < 3 or not isinstance(groups[2], tuple) or not groups[2]:
        return None, None
    first = groups[2][0]
    if not isinstance(first, tuple) or len(first) < 2:
        return None, None
    prefix, delimiter = first[0], first[1]
    return (
        decode_mailbox(prefix) if isinstance(prefix, bytes) else None,
        delimiter.decode() if isinstance(delimiter, bytes) else None,
    )


# -- UIDPLUS -----------------------------------------------------------------------------------


def _uidplus(messages: Sequence[bytes], name: bytes) -> tuple[Token, ...] | None:
    """The arguments of the last ``[COPYUID ...]`` or ``[APPENDUID ...]`` among the messages."""
    marker = b"[" + name
    for message in reversed(messages):
        if marker in message[:96].upper():
            code = _code(message)
            if code is not None and code[0] == name.decode():
                return code[1]
    return None


def _set_text(token: Token) -> str | None:
    if isinstance(token, Atom) and token and all(c.isdigit() or c in ":," for c in token):
        return str(token)
    return None


def parse_copyuid(messages: Sequence[bytes]) -> dict[int, int]:
    """Source UID -> new UID from a ``[COPYUID v src dst]`` response code (UIDPLUS)."""
    code = _uidplus(messages, b"COPYUID")
    if code is None or len(code) < 3:
        return {}
    source, destination = _set_text(code[1]), _set_text(code[2])
    if source is None or destination is None:
        return {}
    return dict(zip(expand_uid_set(source), expand_uid_set(destination), strict=False))


def parse_appenduid(messages: Sequence[bytes]) -> int | None:
    """The new UID from an ``[APPENDUID v uid]`` response code (UIDPLUS), or None."""
    code = _uidplus(messages, b"APPENDUID")
    if code is None or len(code) < 2:
        return None
    return _number(code[1])
