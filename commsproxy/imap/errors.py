"""Refusals that render their own tagged reply, so the code that meets one has a single ``except``.

Each error carries what the client should read; ``reply(tag)`` gives the wire bytes. The text
says what went wrong in words and, where the client can do something, what to do.
"""

from __future__ import annotations

__all__ = ["Bad", "BadTag", "ImapRefusal", "No", "valid_tag"]

# RFC 9051 (and 3501): tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR is printable ASCII
# without the atom-specials, except "]" which it allows.
_TAG_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('(){%*"\\+')


def valid_tag(tag: str | None) -> bool:
    """Whether ``tag`` may stand in a tagged response (a refusal never echoes any other)."""
    return tag is not None and tag != "" and all(c in _TAG_CHARS for c in tag)


class ImapRefusal(Exception):
    """A command commsproxy answers itself with a status other than OK."""

    status = "BAD"

    def __init__(self, text: str, *, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def reply(self, tag: str | None) -> bytes:
        """The whole response line: ``tag status [code] text``; untagged when no tag is known
        or the client's is not a valid tag (echoed, it would not be a proper response)."""
        code = f"[{self.code}] " if self.code else ""
        shown = tag if valid_tag(tag) else "*"
        return f"{shown} {self.status} {code}{self.text}\r\n".encode()


class Bad(ImapRefusal):
    """The command is not valid here (syntax, state, or a bound it exceeds)."""

    status = "BAD"


class No(ImapRefusal):
    """The command is valid but commsproxy will not or cannot carry it out."""

    status = "NO"


class BadTag(Bad):
    """The command's tag is not a valid tag: refused untagged, in Dovecot's words."""

    def __init__(self) -> None:
        super().__init__("Error in IMAP tag")
