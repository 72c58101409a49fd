"""What can go wrong talking to an IMAP server, one exception each, every message one line.

Each message names the server and the command and says why, so a log line or a CLI error needs
nothing added. A refusal (``NO``/``BAD``) keeps the server's response code (``code``, e.g.
``EXPUNGEISSUED``; see commsproxy/imap/codes.py) and text: the link is fine, one command was
refused. Everything else means the connection is unusable and has been closed.
"""

from __future__ import annotations

__all__ = [
    "CommandBad",
    "CommandError",
    "CommandNo",
    "ConnectError",
    "ConnectionLost",
    "ImapError",
    "ImapTimeout",
    "ProtocolError",
]


class ImapError(Exception):
    """Base of every error of the client."""


class ConnectError(ImapError):
    """The server could not be reached, secured (TLS, STARTTLS) or did not greet."""


class ConnectionLost(ImapError):
    """The connection closed (``* BYE``, a reset, or we gave up on it); ``bye`` is the server's
    parting text, if it said one."""

    def __init__(self, message: str, bye: str | None = None) -> None:
        super().__init__(message)
        self.bye = bye


class ImapTimeout(ConnectionLost):
    """No answer in time; the connection is closed, as the server's state is now unknown."""


class ProtocolError(ConnectionLost):
    """The server sent what cannot be framed within our bounds (a 10 MB line); closed."""


class CommandError(ImapError):
    """The server answered ``NO`` or ``BAD`` to one command; the connection is still usable."""

    def __init__(self, message: str, *, status: str, code: str | None, text: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.text = text


class CommandNo(CommandError):
    """``NO``: the command was valid, the server would not or could not do it."""


class CommandBad(CommandError):
    """``BAD``: the server did not accept the command (syntax, state)."""
