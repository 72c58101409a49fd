"""Mailbox names on the wire: modified UTF-7 (RFC 3501 5.1.3), the one codec commsproxy uses.

IMAP spells non-ASCII names as ``&``-shifted base64 of UTF-16 with ``,`` for ``/``
(``Entw&APw-rfe`` is ``Entwürfe``), and ``&`` itself as ``&-``. Decoding is lenient: a shift
that is not valid base64 stays as it was, so a server's odd name is shown, never refused.
"""

from __future__ import annotations

import base64
import binascii

from .names import INBOX

__all__ = ["canonical", "decode_name", "encode_name"]


def encode_name(name: str) -> str:
    """Text to modified UTF-7, the spelling IMAP commands use."""
    out: list[str] = []
    pending: list[str] = []
    for char in [*name, ""]:
        if char and not (" " <= char <= "~"):
            pending.append(char)
            continue
        if pending:
            raw = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=")
            out.append("&" + raw.decode("ascii").replace("/", ",") + "-")
            pending.clear()
        out.append("&-" if char == "&" else char)
    return "".join(out)


def decode_name(wire: bytes | str) -> str:
    """Modified UTF-7 to text: ``Entw&APw-rfe`` → ``Entwürfe``."""
    raw = wire.encode("ascii", "replace") if isinstance(wire, str) else wire
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        if raw[i] != 0x26:  # "&"
            j = raw.find(b"&", i)
            j = n if j < 0 else j
            out.append(raw[i:j].decode("ascii", "replace"))
            i = j
            continue
        end = raw.find(b"-", i + 1)
        if end < 0:
            out.append(raw[i:].decode("ascii", "replace"))
            break
        chunk = raw[i + 1 : end]
        if not chunk:
            out.append("&")
        else:
            b64 = chunk.replace(b",", b"/")
            try:
                padded = b64 + b"=" * (-len(b64) % 4)
                out.append(base64.b64decode(padded, validate=True).decode("utf-16-be"))
            except (binascii.Error, UnicodeDecodeError):
                out.append(raw[i : end + 1].decode("ascii", "replace"))
        i = end + 1
    return "".join(out)


def canonical(name: str) -> str:
    """``name`` with INBOX spelled one way: INBOX is case-insensitive, other names are not."""
    return INBOX if name.upper() == INBOX else name
