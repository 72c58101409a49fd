"""The one asynchronous IMAP client: triage, release, filing and training talk to servers with it.

Built on the sans-IO layer below (commsproxy/imap: framer, grammar, typed responses, command
spelling); imports nothing else of commsproxy but endpoints. ``connect`` opens a verified link
(TCP, implicit TLS or STARTTLS), reads the greeting and capabilities and runs a login step
(``password_login``, or ``sasl_login`` for any SASL mechanism). ``ImapClient.command`` sends a
tagged command (literals included) and returns a typed :class:`~commsproxy.imap.responses.Reply`,
or raises ``CommandNo``/``CommandBad`` carrying the response code; IDLE, unsolicited responses
and bounded buffers are described in client.py. ``connect.open_link`` is the bare link the relay
uses for its own upstream connection.
"""

from __future__ import annotations

from .client import Challenge, ImapClient
from .connect import open_link
from .errors import (
    CommandBad,
    CommandError,
    CommandNo,
    ConnectError,
    ConnectionLost,
    ImapError,
    ImapTimeout,
    ProtocolError,
)
from .login import Login, empty_answer, password_login, sasl_login
from .session import connect

__all__ = [
    "Challenge",
    "CommandBad",
    "CommandError",
    "CommandNo",
    "ConnectError",
    "ConnectionLost",
    "ImapClient",
    "ImapError",
    "ImapTimeout",
    "Login",
    "ProtocolError",
    "connect",
    "empty_answer",
    "open_link",
    "password_login",
    "sasl_login",
]
