"""Taking follow-up addresses out of a message's To, Cc and Bcc before it is relayed.

A client that writes Bcc into the header it sends, or a user who typed ``2d@followup.invalid``
into Cc, would otherwise show the address to every recipient. Only the header block is
rewritten, and only the fields that hold such an address: each address list is split at its
top-level commas (outside quotes, angle brackets and comments), the follow-up entries are
dropped and the others kept byte for byte; a field left empty goes. The body is streamed from
the spool as before (:class:`RewrittenMessage`), so a big message is still never whole in
memory. The lines here came through the DATA reader, so every line end is a CRLF already.
"""

from __future__ import annotations

from collections.abc import Iterator

from .followup_address import is_followup_address
from .spool import BLOCK, Spool

__all__ = ["HEAD_LIMIT", "RewrittenMessage", "read_head", "without_followup"]

HEAD_LIMIT = 256 << 10  # a header block longer than this is left as it is
_FIELDS = (b"to", b"cc", b"bcc")
_FOLD_AT = 76


def read_head(spool: Spool, limit: int = HEAD_LIMIT) -> bytes:
    """The message's header block with its blank line (or the whole message when it has no
    body); empty when it does not end within ``limit`` bytes."""
    head = b""
    for block in spool.blocks():
        head += block
        if head.startswith(b"\r\n"):
            return b"\r\n"  # no header at all: the body starts at once
        end = head.find(b"\r\n\r\n")
        if end >= 0:
            return head[: end + 4]
        if len(head) > limit:
            return b""
    return head if len(head) <= limit else b""


def _fields(head: bytes) -> list[bytes]:
    """The header block as fields, each with its continuation lines and CRLFs."""
    out: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if out and line[:1] in (b" ", b"\t") and out[-1] != b"\r\n":
            out[-1] += line
        else:
            out.append(line)
    return out


def _entries(value: str) -> list[str]:
    """An address list split at its top-level commas."""
    entries: list[str] = []
    depth_angle = depth_comment = 0
    quoted = escaped = False
    start = 0
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == '"':
            quoted = True
        elif char == "(":
            depth_comment += 1
        elif char == ")" and depth_comment:
            depth_comment -= 1
        elif depth_comment:
            continue
        elif char == "<":
            depth_angle += 1
        elif char == ">" and depth_angle:
            depth_angle -= 1
        elif char == "," and not depth_angle:
            entries.append(value[start:i])
            start = i + 1
    entries.append(value[start:])
    return entries


def _address_of(entry: str) -> str:
    text = entry.strip().rstrip(";").strip()
    if "<" in text and text.endswith(">"):
        return text[text.rfind("<") + 1 : -1]
    if ":" in text and not text.startswith('"'):
        text = text.partition(":")[2]  # the first entry of a group: "Team: a@b"
    return text.split("(")[0].strip()


def _folded(name: str, kept: list[str]) -> str:
    """``name: a, b, c`` with a fold before an entry that would pass the usual line length."""
    line = f"{name}:"
    out: list[str] = []
    for i, entry in enumerate(kept):
        piece = entry.strip() + ("," if i < len(kept) - 1 else "")
        if len(line) + 1 + len(piece) > _FOLD_AT and line.strip() != f"{name}:":
            out.append(line)
            line = ""
        line += " " + piece
    out.append(line)
    return "\r\n".join(out) + "\r\n"


def _rewrite_field(field: bytes) -> bytes | None:
    """``field`` without its follow-up addresses; None when it had none."""
    text = field.decode("latin-1")  # byte for byte back, whatever the charset
    name, _, value = text.partition(":")
    value = value.replace("\r\n", "")  # unfolded: the continuation's own WSP stays
    entries = _entries(value)
    kept: list[str] = []
    dropped = False
    for entry in entries:
        if is_followup_address(_address_of(entry)):
            dropped = True
            if entry.strip().endswith(";") and kept and not kept[-1].strip().endswith(";"):
                kept[-1] = kept[-1].rstrip() + ";"  # the group it ended is closed still
            continue
        kept.append(entry)
    if not dropped:
        return None
    kept = [entry for entry in kept if entry.strip()]
    if not kept:
        return b""
    return _folded(name, kept).encode("latin-1")


def without_followup(head: bytes) -> bytes | None:
    """The header block with every follow-up address taken out of To, Cc and Bcc; None when
    there was none (the message goes as it came)."""
    if "followup.invalid" not in head.decode("latin-1").lower():
        return None
    changed = False
    out: list[bytes] = []
    for field in _fields(head):
        name = field.partition(b":")[0].strip().lower()
        rewritten = _rewrite_field(field) if name in _FIELDS and b":" in field else None
        if rewritten is None:
            out.append(field)
        else:
            changed = True
            out.append(rewritten)
    return b"".join(out) if changed else None


class RewrittenMessage:
    """A spooled message with a new header block in front of its unchanged rest.

    What ``send_data`` reads: ``blocks()`` and ``read_all()`` as a Spool has them.
    """

    def __init__(self, spool: Spool, old_head: int, head: bytes) -> None:
        self._spool = spool
        self._skip = old_head  # bytes of the spool the new header replaces
        self._head = head
        self.size = spool.size - old_head + len(head)

    def blocks(self, size: int = BLOCK) -> Iterator[bytes]:
        yield self._head
        skip = self._skip
        for block in self._spool.blocks(size):
            if skip >= len(block):
                skip -= len(block)
                continue
            yield block[skip:]
            skip = 0

    def read_all(self) -> bytes:
        return b"".join(self.blocks())
