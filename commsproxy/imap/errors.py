"""Refusals that render their own tagged reply, so the code that meets one has a single ``except``.

Each error carries what the client should read; ``reply(tag)`` gives the wire bytes. The text
says what went wrong in words and, where the client can do something, what to do.
"""

from __future__ import annotations

__all__ = ["Bad", "ImapRefusal", "No"]


class ImapRefusal(Exception):
    """A command commsproxy answers itself with a status other than OK."""

    status = "BAD"

    def __init__(self, text: str, *, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code

    def reply(self, tag: str | None) -> bytes:
        """The whole response line: ``tag status [code] text``; untagged when no tag is known."""
        code = f"[{self.code}] " if self.code else ""
        return f"{tag or '*'} {self.status} {code}{self.text}\r\n".encode()


class Bad(ImapRefusal):
    """The command is not valid here (syntax, state, or a bound it exceeds)."""

    status = "BAD"


class No(ImapRefusal):
    """The command is valid but commsproxy will not or cannot carry it out."""

    status = "NO"
