"""The not-authenticated state, answered by the proxy itself until it knows the user.

With several ``[[login]]`` the server a client belongs to follows from its user name, so the
relay cannot connect upstream before LOGIN. Until then the proxy speaks RFC 3501's
not-authenticated state itself: CAPABILITY, NOOP, ID, LOGOUT, STARTTLS (the relay's own),
LOGIN and AUTHENTICATE PLAIN with or without an initial response (RFC 4959). User names and
passwords may come as literals; the login is sent on to the chosen server in a form any server
reads (quoted strings, else synchronizing literals), so the client's own choice of LITERAL+ or
SASL-IR never depends on the upstream offering it.

Sans-IO: lines and whole client messages in, replies and a routing decision out. This is the
NOT_AUTHENTICATED part of the session machine (session.py), which drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Bad, BadTag, ImapRefusal, No, valid_tag
from .framer import Line
from .grammar import Command, ParseError, parse_command, sasl_plain_credentials

__all__ = ["CAPABILITIES", "Local", "PreLogin", "Reply", "Route", "login_segments"]

CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR ID AUTH=PLAIN"
MAX_LITERAL = 8192  # a user name or password; anything larger before login is refused


@dataclass(frozen=True)
class Reply:
    data: bytes
    close: bool = False  # the session ends after sending it
    cancel_literal: bool = False  # the announced literal was refused: the client won't send it


@dataclass(frozen=True)
class Local:
    """A command the relay itself answers in any state (one of ``PreLogin``'s ``local``)."""

    command: Command


@dataclass(frozen=True)
class Route:
    """The client said who it is: connect to that user's server and log in there.

    ``upstream`` is the login to send, in pieces: after each piece but the last the server's
    ``+`` continuation is awaited (a synchronizing literal follows).
    """

    tag: str
    user: str
    password: str = field(repr=False)
    upstream: tuple[bytes, ...] = field(repr=False)


Action = Reply | Local | Route


def _refuse(tag: str | None, refusal: ImapRefusal) -> Reply:
    return Reply(refusal.reply(tag))


class PreLogin:
    """One client's not-authenticated state."""

    def __init__(self, *, offer_starttls: bool, local: frozenset[str] = frozenset()) -> None:
        self.offer_starttls = offer_starttls  # set to False once the client link is TLS
        self._local = local  # commands about this hop (STARTTLS...) that the relay answers
        self._tag: str | None = None  # of the message being received
        self._sasl_tag: str | None = None  # AUTHENTICATE PLAIN waiting for its response line

    @property
    def sasl_pending(self) -> bool:
        """An AUTHENTICATE PLAIN waits for its response line (the proxy sent ``+``)."""
        return self._sasl_tag is not None

    def capabilities(self) -> str:
        return CAPABILITIES + (" STARTTLS" if self.offer_starttls else "")

    def greeting(self) -> bytes:
        return f"* OK [CAPABILITY {self.capabilities()}] commsproxy ready\r\n".encode()

    def line(self, line: Line) -> Reply | None:
        """Each line as it arrives: a literal the client waits for is invited or refused."""
        if line.first:
            self._tag = line.data.split(b" ", 1)[0].decode("ascii", "replace").strip()
        spec = line.literal
        if spec is None or self._sasl_tag is not None:
            return None
        if spec.size <= MAX_LITERAL:
            return Reply(b"+ go ahead\r\n") if spec.synchronizing else None
        why = f"literal of {spec.size} bytes before login (limit {MAX_LITERAL})"
        if spec.synchronizing:
            return Reply(Bad(why).reply(self._tag), cancel_literal=True)
        return Reply(f"* BYE {why}\r\n".encode(), close=True)

    def message(self, head: bytes, truncated: bool) -> Action:
        """A whole client message (its first ``max_head`` bytes, literals included)."""
        if self._sasl_tag is not None:
            tag, self._sasl_tag = self._sasl_tag, None
            return self._sasl_response(tag, head)
        if truncated:
            return _refuse(self._tag, Bad("command too long before login"))
        try:
            command = parse_command(head)
        except ParseError:
            return _refuse(None, Bad("commsproxy: that is not an IMAP command"))
        tag, name = command.tag, command.name
        if not valid_tag(tag):
            return _refuse(None, BadTag())  # every answer below would echo it
        if name in self._local:
            return Local(command)
        if name == "CAPABILITY":
            caps = f"* CAPABILITY {self.capabilities()}\r\n"
            return Reply(f"{caps}{tag} OK CAPABILITY completed\r\n".encode())
        if name == "NOOP":
            return Reply(f"{tag} OK NOOP completed\r\n".encode())
        if name == "ID":
            return Reply(f"* ID NIL\r\n{tag} OK ID completed\r\n".encode())
        if name == "LOGOUT":
            bye = "* BYE commsproxy logging out\r\n"
            return Reply(f"{bye}{tag} OK LOGOUT completed\r\n".encode(), close=True)
        if name == "LOGIN":
            return self._login(command)
        if name == "AUTHENTICATE":
            return self._authenticate(command)
        return _refuse(tag, Bad(f"{name} is not valid before LOGIN"))

    def _login(self, command: Command) -> Action:
        args = command.args
        if len(args) != 2 or not all(isinstance(a, str | bytes) for a in args):
            return _refuse(command.tag, Bad("LOGIN expects a user name and a password"))
        user, password = (a if isinstance(a, bytes) else str(a).encode() for a in args)
        return Route(
            command.tag,
            user.decode("utf-8", "replace"),
            password.decode("utf-8", "replace"),
            login_segments(command.tag, user, password),
        )

    def _authenticate(self, command: Command) -> Action:
        mechanism = command.args[0] if command.args else None
        if not isinstance(mechanism, str) or mechanism.upper() != "PLAIN":
            why = "commsproxy needs the user name first: use LOGIN or AUTHENTICATE PLAIN"
            return _refuse(command.tag, No(why, code="CANNOT"))
        if len(command.args) > 1:  # SASL-IR: the response is on the command line
            response = command.args[1]
            data = response.encode() if isinstance(response, str) else response
            return self._sasl_response(command.tag, data if isinstance(data, bytes) else b"")
        self._sasl_tag = command.tag
        return Reply(b"+ \r\n")

    def _sasl_response(self, tag: str, line: bytes) -> Action:
        response = line.strip()
        if response == b"*":
            return _refuse(tag, Bad("AUTHENTICATE cancelled"))
        if response == b"=":
            response = b""
        credentials = sasl_plain_credentials(response)
        if credentials is None:
            return _refuse(tag, Bad("that is not a SASL PLAIN response"))
        user, password = credentials
        # The client's own response goes upstream unchanged (it may name an authorization
        # identity, which LOGIN could not carry).
        pieces = (f"{tag} AUTHENTICATE PLAIN\r\n".encode(), (response or b"=") + b"\r\n")
        return Route(tag, user, password, pieces)


def _quotable(value: bytes) -> bool:
    return all(0x20 <= byte < 0x7F for byte in value)


def login_segments(tag: str, user: bytes, password: bytes) -> tuple[bytes, ...]:
    """``tag LOGIN user password`` as quoted strings where possible, literals where not."""
    segments: list[bytes] = []
    current = f"{tag} LOGIN".encode()
    for value in (user, password):
        if _quotable(value):
            current += b' "' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
        else:
            segments.append(current + b" {%d}\r\n" % len(value))
            current = value
    segments.append(current + b"\r\n")
    return tuple(segments)
