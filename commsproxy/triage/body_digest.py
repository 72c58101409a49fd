"""A digest of a message's body, to tell a true duplicate from another message with the same
Message-ID (a broken mailer, a resend with a changed body, a forged ID).

The body is what IMAP calls ``BODY[TEXT]``: everything after the header's blank line. The header
is left out on purpose: each delivery adds its own (Received, Delivered-To), so a colleague's
copy of the same message differs there. Line ends are made LF and trailing blank lines dropped,
since servers store and return line ends their own way.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["body_of", "message_digest", "text_digest"]

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def text_digest(text: bytes) -> str:
    """The digest of a body as ``BODY[TEXT]`` gives it."""
    normal = text.replace(b"\r\n", b"\n").rstrip(b"\n")
    return hashlib.sha256(normal).hexdigest()


def body_of(message: bytes) -> bytes:
    """The part after the header (empty when there is no blank line)."""
    match = _BLANK_LINE.search(message)
    return message[match.end() :] if match is not None else b""


def message_digest(message: bytes) -> str:
    """The digest of a whole message's body (header and body as one, as APPEND takes it)."""
    return text_digest(body_of(message))
