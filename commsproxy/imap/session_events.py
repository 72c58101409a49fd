"""What the session machine (session.py) tells the code that drives it.

Two kinds of events, both frozen dataclasses pulled with ``ImapSession.drain()``:

- facts about the session, for logs and later layers: ``LoggedIn``, ``Selected``, ``Deselected``,
  ``Completed``, ``IdleStarted``, ``IdleDone``, ``Bye`` (all but ``LoggedIn`` only from a machine
  made with ``facts=True``, the default: the relay reads none of them and asks for none);
- work for the I/O layer, in the order it must be done: ``Answer`` (bytes the proxy writes to the
  client itself), ``ToUpstream`` (bytes the proxy writes upstream itself), ``CancelLiteral`` (the
  client will not send the literal its framer waits for), ``StartTls``, ``ConnectUpstream`` (a
  login names its server: connect and log in there) and ``Hangup`` (close after the answers).

A secret travels only in ``LoggedIn`` and ``ClientLogin`` and never shows in a repr.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Answer",
    "Bye",
    "CancelLiteral",
    "ClientLogin",
    "Completed",
    "ConnectUpstream",
    "Deselected",
    "Event",
    "Hangup",
    "IdleDone",
    "IdleStarted",
    "LoggedIn",
    "LoginSteps",
    "Selected",
    "StartTls",
    "ToUpstream",
]


@dataclass(frozen=True, slots=True)
class ClientLogin:
    """A login the client sent while the proxy answered it: who, with what, and how it came.

    ``pieces`` is the client's own login in a form any server reads (LOGIN with quoted strings
    or synchronizing literals, or the client's AUTHENTICATE PLAIN response): what a proxy that
    passes credentials on sends upstream.
    """

    tag: str
    user: str
    secret: str = field(repr=False)
    pieces: tuple[bytes, ...] = field(repr=False)


@dataclass(frozen=True, slots=True)
class LoginSteps:
    """The login to send upstream under the client's tag, in pieces: after each piece but the
    last the server's ``+`` is awaited. A ``+`` after the last piece (a SASL error challenge)
    is answered with ``on_challenge``; ``*`` cancels the exchange in any mechanism."""

    pieces: tuple[bytes, ...] = field(repr=False)
    on_challenge: bytes = b"*\r\n"


@dataclass(frozen=True, slots=True)
class LoggedIn:
    """The upstream accepted the login; the secret is handed on once, here, and then dropped."""

    tag: str
    user: str | None  # None for a SASL mechanism the proxy does not read
    secret: str | None = field(repr=False)


@dataclass(slots=True)  # per command: not frozen, for speed; treat as read-only
class Selected:
    """The server said OK to SELECT/EXAMINE: this mailbox is selected now."""

    mailbox: str
    read_only: bool
    exists: int | None


@dataclass(slots=True)  # per command: not frozen, for speed; treat as read-only
class Deselected:
    """No mailbox is selected any more (CLOSE, UNSELECT, or a SELECT that failed)."""

    mailbox: str


@dataclass(slots=True)  # per command: not frozen, for speed; treat as read-only
class Completed:
    """A tagged reply ended a command; ``own`` for a command the proxy itself sent."""

    tag: str
    status: str
    code: str | None
    own: bool = False


@dataclass(slots=True)  # per command: not frozen, for speed; treat as read-only
class IdleStarted:
    tag: str


@dataclass(slots=True)  # per command: not frozen, for speed; treat as read-only
class IdleDone:
    """The client said DONE; the IDLE's tagged reply follows."""

    tag: str


@dataclass(frozen=True, slots=True)
class Bye:
    """The server said BYE: it is closing the connection."""

    line: bytes


@dataclass(frozen=True, slots=True)
class Answer:
    data: bytes


@dataclass(frozen=True, slots=True)
class ToUpstream:
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class CancelLiteral:
    pass


@dataclass(frozen=True, slots=True)
class StartTls:
    """Write ``reply``, then negotiate TLS with the client and call ``tls_established``."""

    reply: bytes


@dataclass(frozen=True, slots=True)
class ConnectUpstream:
    login: ClientLogin


@dataclass(frozen=True, slots=True)
class Hangup:
    """Close the client connection once the answers before it are written."""


Event = (
    LoggedIn
    | Selected
    | Deselected
    | Completed
    | IdleStarted
    | IdleDone
    | Bye
    | Answer
    | ToUpstream
    | CancelLiteral
    | StartTls
    | ConnectUpstream
    | Hangup
)
