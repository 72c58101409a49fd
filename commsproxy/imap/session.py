"""The proxy's IMAP session as one state machine: what both sides said, and what it means.

The relay feeds it the framer's events from each direction (``client_line``,
``client_message_end``, ``server_line``) and pulls events with ``drain()``; it never does I/O.
It owns the facts every other layer reads: the state below, the commands in flight (tag ->
command), the pending login (user and secret, held here only until ``LoggedIn`` hands them on),
the selected mailbox (set when the *server* says OK, never when the client asks), the message
count the upstream reported for it (EXISTS, EXPUNGE, VANISHED), and the proxy's own tags.

Forwarding stays byte-exact: ``client_line`` only says whether a line goes upstream, and
``server_line`` returns the line unchanged except for capability lists (this hop's STARTTLS and
no COMPRESS) and the replies to the proxy's own commands, which the client never sees.

States and the events that move between them (``REST`` is AUTHENTICATED, or SELECTED while a
mailbox is selected; BYE from the server and the end of the connection lead to LOGOUT and
CLOSED from every state)::

                 STARTTLS ok        +-----------+
              +-------------------> | STARTTLS  |
              |  <---- TLS up ----- +-----------+
      +-------------------+  AUTHENTICATE  +----------------+
      | NOT_AUTHENTICATED | -------------> | AUTHENTICATING |--+ (SASL responses
      +-------------------+ <-- NO/BAD --- +----------------+  |  are continuations)
          |  ^       LOGIN                       | routed      |
          |  +----- NO/BAD --+                   v             |
          +----------------> | LOGGING_IN | <----+             |
                             +------------+                    |
                   OK (LoggedIn) |   PREAUTH greeting          | OK (LoggedIn)
                                 v   v                         v
      +---------------+  SELECT OK  +----------+  IDLE   +-------------+
      | AUTHENTICATED | ----------> | SELECTED | ------> | IDLE (tag)  |
      +---------------+ <---------- +----------+ <-REST- +-------------+
              ^   CLOSE/UNSELECT OK, SELECT failed          (DONE, then its reply)
              +--------------- REST -------------------------+

The transitions are the one table ``TRANSITIONS``. A server reply that the table does not
expect leaves the state alone: the server owns the truth and the bytes were forwarded anyway.
A client command the proxy answers itself (STARTTLS, COMPRESS, everything before a routed
login) is refused with a ``commsproxy.imap.errors`` refusal rendered as its tagged reply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum, auto

from .capability import rewrite_capabilities
from .errors import Bad, BadTag, ImapRefusal, No, valid_tag
from .framer import Line, LiteralTooLarge, MessageEnd
from .grammar import (
    Command,
    ParseError,
    Response,
    ResponseKind,
    parse_command,
    parse_response,
    sasl_plain_credentials,
)
from .prelogin import Local, PreLogin, Reply, Route
from .session_events import (
    Answer,
    Bye,
    CancelLiteral,
    ClientLogin,
    Completed,
    ConnectUpstream,
    Deselected,
    Event,
    Hangup,
    IdleDone,
    IdleStarted,
    LoggedIn,
    LoginSteps,
    Selected,
    StartTls,
    ToUpstream,
)

__all__ = ["REST", "TRANSITIONS", "UNREAD_RESPONSES", "ImapSession", "State", "Trigger"]

# The start of the untagged responses ``server_line`` takes no notice of, as a regular expression
# for the framer (framer.py, ``unread``): ``* n word`` but EXISTS and EXPUNGE (the message
# count); ``* word`` but words starting like the status responses (OK, NO, BAD, BYE,
# PREAUTH: the end of the connection), CAPABILITY (rewritten), VANISHED or ENABLED; and
# ``* OK`` but with a code starting like CAPABILITY, CLOSED, UIDNEXT or UIDVALIDITY. So a sync's
# FETCH, LIST, SEARCH and STATUS lines and their literals, IDLE's "* OK Still here" and most of
# a SELECT's answer (FLAGS, PERMANENTFLAGS, UNSEEN, HIGHESTMODSEQ) pass as bytes, unparsed. A
# line read needlessly only costs a parse, so the exceptions are generous (any case, a first
# letter, a second blank). Written for the regex engine's speed: the numbered branch first,
# character classes rather than words; it matches at most 24 bytes.
UNREAD_RESPONSES = (
    rb"\* (?:[0-9]{1,20} (?![ \t]|[Ee][Xx])|(?![ \t0-9OoNnBbPpCcVvEe])|OK (?!\[(?:[Cc]|[Uu][Ii])))"
)


class State(Enum):
    # Hashed by identity (members are singletons), in C: Enum's own hash is a Python call,
    # and every transition looks up a (State, Trigger) pair in ``TRANSITIONS``.
    __hash__ = object.__hash__

    NOT_AUTHENTICATED = auto()
    STARTTLS = auto()  # the proxy said OK to STARTTLS; the client link is being secured
    AUTHENTICATING = auto()  # AUTHENTICATE in flight: client lines are SASL responses
    LOGGING_IN = auto()  # a LOGIN (or the proxy's routed login) awaits the upstream's answer
    AUTHENTICATED = auto()
    SELECTED = auto()
    IDLE = auto()  # carries its tag (``idle_tag``): client lines are continuations (DONE)
    LOGOUT = auto()  # LOGOUT sent or BYE received: the connection is ending
    CLOSED = auto()


class Trigger(Enum):
    __hash__ = object.__hash__  # as State's

    STARTTLS_ACCEPTED = auto()
    TLS_ESTABLISHED = auto()
    LOGIN = auto()
    AUTHENTICATE = auto()
    ROUTED = auto()  # the proxy's own SASL exchange gave a user: log in upstream
    LOGIN_OK = auto()
    LOGIN_FAILED = auto()
    PREAUTH = auto()
    SELECT_OK = auto()
    SELECT_FAILED = auto()
    UNSELECTED = auto()  # CLOSE or UNSELECT completed
    IDLE = auto()
    IDLE_ENDED = auto()
    LOGOUT = auto()
    BYE = auto()
    CONNECTION_LOST = auto()


S, T = State, Trigger
REST = None  # target meaning "AUTHENTICATED, or SELECTED while a mailbox is selected"
_LOGGED_IN = (S.AUTHENTICATED, S.SELECTED, S.IDLE)

TRANSITIONS: dict[tuple[State, Trigger], State | None] = {
    (S.NOT_AUTHENTICATED, T.STARTTLS_ACCEPTED): S.STARTTLS,
    (S.STARTTLS, T.TLS_ESTABLISHED): S.NOT_AUTHENTICATED,
    (S.NOT_AUTHENTICATED, T.LOGIN): S.LOGGING_IN,
    (S.NOT_AUTHENTICATED, T.AUTHENTICATE): S.AUTHENTICATING,
    (S.NOT_AUTHENTICATED, T.PREAUTH): S.AUTHENTICATED,
    (S.AUTHENTICATING, T.ROUTED): S.LOGGING_IN,
    (S.AUTHENTICATING, T.LOGIN_OK): S.AUTHENTICATED,
    (S.AUTHENTICATING, T.LOGIN_FAILED): S.NOT_AUTHENTICATED,
    (S.LOGGING_IN, T.LOGIN_OK): S.AUTHENTICATED,
    (S.LOGGING_IN, T.LOGIN_FAILED): S.NOT_AUTHENTICATED,
    (S.AUTHENTICATED, T.SELECT_OK): S.SELECTED,
    (S.SELECTED, T.SELECT_OK): S.SELECTED,
    (S.AUTHENTICATED, T.SELECT_FAILED): S.AUTHENTICATED,
    (S.SELECTED, T.SELECT_FAILED): S.AUTHENTICATED,  # RFC 3501 6.3.1: the old one is gone
    (S.SELECTED, T.UNSELECTED): S.AUTHENTICATED,
    (S.AUTHENTICATED, T.IDLE): S.IDLE,
    (S.SELECTED, T.IDLE): S.IDLE,
    (S.IDLE, T.IDLE_ENDED): REST,
    # A pipelined SELECT answered before the IDLE began: the mailbox is noted, IDLE goes on.
    (S.IDLE, T.SELECT_OK): S.IDLE,
    (S.IDLE, T.SELECT_FAILED): S.IDLE,
    (S.IDLE, T.UNSELECTED): S.IDLE,
    **{(state, T.LOGOUT): S.LOGOUT for state in (S.NOT_AUTHENTICATED, *_LOGGED_IN)},
    **{(state, T.BYE): S.LOGOUT for state in State if state is not S.CLOSED},
    **{(state, T.CONNECTION_LOST): S.CLOSED for state in State},
}

# A valid tag (``errors.valid_tag``: printable ASCII but ``(){%*"\+``), read in one step.
_TAG = re.compile(r"[!#$&',-\[\]-z|}~]+")
_LOCAL = frozenset({"STARTTLS", "COMPRESS"})  # about this hop: answered here, never forwarded
_SELECTS = frozenset({"SELECT", "EXAMINE"})
_SELECT_CODES = frozenset({"UIDNEXT", "UIDVALIDITY"})
_UNTAGGED, _TAGGED, _CONTINUATION = (
    ResponseKind.UNTAGGED,
    ResponseKind.TAGGED,
    ResponseKind.CONTINUATION,
)


class _Shown(Enum):
    CLIENT = auto()  # forwarded
    OWN = auto()  # the reply to the proxy's own command: later layers see it, the client not
    HIDDEN = auto()  # nobody: an artefact of the proxy's own doing


_SHOWN, _OWN, _HIDDEN = _Shown


@dataclass
class _PendingLogin:
    """The one place a client's secret is held: from its login until the upstream answers."""

    tag: str
    user: str | None = None
    secret: str | None = field(default=None, repr=False)
    mechanism: str | None = None  # AUTHENTICATE's: only PLAIN responses are read
    steps: list[bytes] = field(default_factory=list, repr=False)  # a routed login's pieces
    on_challenge: bytes = b"*\r\n"


@dataclass
class _Idle:
    tag: str
    started: bool = False  # the server's "+" came
    done: bool = False  # the client said DONE
    restart: bool = False  # the proxy re-issues it: its reply and next "+" are not the client's


class ImapSession:
    """One client session as the proxy sees it; see the module docstring."""

    def __init__(
        self,
        *,
        answer_prelogin: bool = False,
        offer_starttls: bool = False,
        client_tls: bool = False,
        tag_prefix: str = "cp",
        facts: bool = True,
    ) -> None:
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.selected: str | None = None
        self.read_only = False
        self.exists: int | None = None  # the upstream's message count for the selected mailbox
        # What the last SELECT/EXAMINE's answer said (None when it did not): the gate reads them
        self.uidnext: int | None = None
        self.uidvalidity: int | None = None
        self.in_flight: dict[str, Command] = {}
        self.own_tags: dict[str, str] = {}  # the proxy's own commands in flight: tag -> name
        self.commands = 0
        self.offer_starttls = offer_starttls  # on the client link: a certificate, no TLS yet
        self.bye: bytes | None = None  # the server's BYE line, once it said one
        self.relaying = not answer_prelogin  # the client's bytes go upstream (not answered here)
        self.sent: Command | None = None
        self._tls = client_tls
        # Before a routed login the proxy answers the client itself.
        self._prelogin = (
            PreLogin(offer_starttls=offer_starttls, local=_LOCAL) if answer_prelogin else None
        )
        self._pending: _PendingLogin | None = None
        self._idle: _Idle | None = None
        self._selecting = 0  # SELECT/EXAMINE in flight: untagged data is for the new mailbox
        self._current: str | None = None  # tag of the client message being received
        self._current_literal = False
        # A prefix and a counter, not a generator: a generator keeps a frame per session.
        self._tag_prefix, self._tag_count = tag_prefix, 0
        self.events: list[Event] = []  # a list: an empty deque costs 600 bytes per session
        # Whether ``events`` also tells the facts (Selected, Completed, ...): a driver that
        # reads none of them (the relay) saves making three per SELECT.
        self._facts = facts

    # -- facts -------------------------------------------------------------------------------

    @property
    def selecting(self) -> bool:
        """A SELECT/EXAMINE is in flight: what the server says now is about the new mailbox."""
        return self._selecting > 0

    @property
    def idle_tag(self) -> str | None:
        return self._idle.tag if self._idle is not None else None

    @property
    def idling(self) -> bool:
        """In IDLE, confirmed by the server, and the client has not said DONE."""
        idle = self._idle
        return idle is not None and idle.started and not idle.done and not idle.restart

    def drain(self) -> list[Event]:
        """Every event since the last call, in order."""
        events, self.events = self.events, []
        return events

    def _fire(self, trigger: Trigger) -> bool:
        """Move by the table; False (and no move) for a pair the table does not list."""
        key = (self.state, trigger)
        if key not in TRANSITIONS:
            return False
        target = TRANSITIONS[key]
        if target is REST:
            target = S.SELECTED if self.selected is not None else S.AUTHENTICATED
        self.state = target
        return True

    # -- the client's side ---------------------------------------------------------------------

    def greeting(self) -> bytes:
        """The proxy's own greeting, when it answers the not-authenticated state itself."""
        assert self._prelogin is not None
        return self._prelogin.greeting()

    def client_line(self, line: Line) -> bool:
        """A line from the client: True to forward it upstream, False if answered here.

        After a forwarded first line, ``sent`` is the command it began (None for a
        continuation or a line that is no command).
        """
        self.sent = None
        if self._prelogin is not None:
            self._take(self._prelogin.line(line))
            return False
        if not line.first:
            return True
        if self.state is S.AUTHENTICATING or self._idle is not None:
            self._continuation(line.data)
            return True
        try:
            command = parse_command(line.data)
        except ParseError:
            self._current = None
            return True  # the server, which owns the grammar, will say BAD
        self._current, self._current_literal = command.tag, line.literal is not None
        self.commands += 1
        if command.name in _LOCAL and line.literal is None:
            self._local(command)
            return False
        if _TAG.fullmatch(command.tag) is None:
            # The server refuses it untagged ("* BAD Error in IMAP tag"): tracked, it would
            # stay in flight for good, one entry per such line.
            self._current = None
            return True
        self._sent(command)
        self.sent = command
        return True

    def client_command(self, data: bytes) -> bool:
        """A whole one-line message from the client after the login (``relaying``), in one
        step: ``client_line`` with its first Line and then its end (``Framer.whole_line``)."""
        assert self._prelogin is None
        forward = self.client_line(Line(data, True, None))
        self._current = None  # its end: without a literal there is nothing to read again
        return forward

    def client_message_end(self, end: MessageEnd) -> None:
        """A whole client message: read again when literals carried its arguments."""
        if self._prelogin is not None:
            self._prelogin_message(end)
            return
        tag, self._current = self._current, None
        if tag is None or tag not in self.in_flight or not self._current_literal or end.truncated:
            return
        try:
            command = parse_command(end.head)
        except ParseError:
            return
        self.in_flight[tag] = command
        pending = self._pending
        if command.name == "LOGIN" and pending is not None and pending.tag == tag:
            pending.user, pending.secret = _login_args(command)

    def client_literal_too_large(self, err: LiteralTooLarge) -> bool:
        """A literal over the bound: True after a BAD (nothing of it was sent), False when the
        connection must close (the client is sending it already)."""
        tag = self._current
        if err.first:
            try:
                tag = parse_command(err.line).tag
            except ParseError:
                tag = None
        if err.spec.synchronizing and err.first and tag is not None:
            why = f"literal of {err.spec.size} bytes exceeds {err.limit}"
            self.events.append(Answer(Bad(why, code="TOOBIG").reply(tag)))
            return True
        return False

    def tls_established(self) -> None:
        self._fire(T.TLS_ESTABLISHED)
        self.offer_starttls, self._tls = False, True
        if self._prelogin is not None:
            self._prelogin.offer_starttls = False

    def _continuation(self, data: bytes) -> None:
        """A SASL response or IDLE's DONE: never parsed as a command."""
        self._current = None
        idle = self._idle
        if idle is not None:
            if not idle.done:
                idle.done = True
                if self._facts:
                    self.events.append(IdleDone(idle.tag))
        else:
            self._sasl_response(data)

    def _sasl_response(self, data: bytes) -> None:
        pending = self._pending
        if pending is not None and pending.mechanism == "PLAIN" and pending.secret is None:
            credentials = sasl_plain_credentials(data)
            if credentials is not None:
                pending.user, pending.secret = credentials

    def _sent(self, command: Command) -> None:
        """A client command on its way upstream."""
        tag, name = command.tag, command.name
        self.in_flight[tag] = command
        if name in _SELECTS:
            self._selecting += 1
            self.exists = None  # what the server says next counts the new mailbox
            self.uidnext = self.uidvalidity = None
        elif name == "IDLE":
            if self._fire(T.IDLE):
                self._idle = _Idle(tag)
        elif name == "LOGIN":
            if self._fire(T.LOGIN):
                user, secret = _login_args(command)
                self._pending = _PendingLogin(tag, user, secret)
        elif name == "AUTHENTICATE":
            if self._fire(T.AUTHENTICATE):
                mechanism = command.args[0] if command.args else None
                upper = mechanism.upper() if isinstance(mechanism, str) else None
                self._pending = _PendingLogin(tag, mechanism=upper)
                if len(command.args) > 1 and isinstance(command.args[1], str | bytes):
                    self._sasl_response(_bytes(command.args[1]))  # SASL-IR
        elif name == "LOGOUT":
            self._fire(T.LOGOUT)

    def _local(self, command: Command) -> None:
        try:
            if not valid_tag(command.tag):
                raise BadTag()  # untagged, as the server answers such a line; no TLS begins
            if command.name == "COMPRESS":
                raise No("COMPRESS is not offered through commsproxy")
            if not self.offer_starttls:
                why = "TLS is already active" if self._tls else "no local certificate"
                raise Bad(f"STARTTLS not available: {why}")
            if not self._fire(T.STARTTLS_ACCEPTED):
                raise Bad("STARTTLS is only valid before login")
        except ImapRefusal as refusal:
            self.events.append(Answer(refusal.reply(command.tag)))
            return
        self.events.append(StartTls(f"{command.tag} OK Begin TLS negotiation now\r\n".encode()))

    # -- the not-authenticated state, answered here (routed logins) ----------------------------

    def _prelogin_message(self, end: MessageEnd) -> None:
        prelogin = self._prelogin
        assert prelogin is not None
        self.commands += 1
        action = prelogin.message(end.head, end.truncated)
        if isinstance(action, Local):
            self._local(action.command)
        elif isinstance(action, Route):
            self._fire(T.ROUTED if self.state is S.AUTHENTICATING else T.LOGIN)
            self.in_flight[action.tag] = Command(action.tag, "LOGIN", ())
            self._pending = _PendingLogin(action.tag, action.user, action.password)
            login = ClientLogin(action.tag, action.user, action.password, action.upstream)
            self.events.append(ConnectUpstream(login))
        else:
            self._take(action)
            if prelogin.sasl_pending:
                self._fire(T.AUTHENTICATE)
            elif self.state is S.AUTHENTICATING:
                self._fire(T.LOGIN_FAILED)
            if action.close:
                self._fire(T.LOGOUT)

    def _take(self, reply: Reply | None) -> None:
        if reply is None:
            return
        self.events.append(Answer(reply.data))
        if reply.cancel_literal:
            self.events.append(CancelLiteral())
        if reply.close:
            self.events.append(Hangup())

    def begin_upstream_login(self, steps: LoginSteps) -> None:
        """The routed login's server is connected: send the login (the first piece now)."""
        pending = self._pending
        assert pending is not None
        pending.steps, pending.on_challenge = list(steps.pieces), steps.on_challenge
        self.events.append(ToUpstream(pending.steps.pop(0)))

    def login_refused(self, refusal: ImapRefusal) -> None:
        """The routed login cannot go on (no server for the user, unreachable, refused by the
        proxy's own check): the client is told, and may try again."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        self.in_flight.pop(pending.tag, None)
        self._fire(T.LOGIN_FAILED)
        self.events.append(Answer(refusal.reply(pending.tag)))

    # -- the server's side ---------------------------------------------------------------------

    def server_line(self, data: bytes) -> tuple[bytes, Response | None]:
        """The first line of a server response: the bytes the client gets (``b""`` for none)
        and the parsed response for later layers (None when the client must not hear of it)."""
        try:
            response = parse_response(data)
        except ParseError:
            return data, None
        kind = response.kind
        if kind is _UNTAGGED:
            self._untagged(response, data)
        elif kind is _TAGGED:
            shown = self._tagged(response)
            if shown is not _SHOWN:
                return b"", response if shown is _OWN else None
        elif not self._continuation_from_server():
            return b"", None
        if response.name == "CAPABILITY" or response.code == "CAPABILITY":
            data = rewrite_capabilities(data, offer_starttls=self.offer_starttls)
        return data, response

    def _untagged(self, response: Response, data: bytes) -> None:
        name, number = response.name, response.number
        if number is not None:
            if name == "EXISTS":
                self.exists = number
            elif name == "EXPUNGE" and self.exists:
                self.exists -= 1
        elif name == "OK":  # the commonest read: a SELECT's CLOSED, UIDVALIDITY and UIDNEXT
            code = response.code
            if code == "CLOSED":
                # QRESYNC: the old mailbox closed while a SELECT goes on.
                if self.selected is not None:
                    self._deselect(T.UNSELECTED)
            elif code in _SELECT_CODES and self._selecting:
                if code == "UIDNEXT":
                    self.uidnext = response.value
                else:
                    self.uidvalidity = response.value
        elif name == "VANISHED":
            if self.exists is not None and b"(EARLIER)" not in data[:40].upper():
                self.exists = max(0, self.exists - _uid_count(data))
        elif name == "BYE":
            self.bye = data
            self._fire(T.BYE)
            if self._facts:
                self.events.append(Bye(data))
        elif name == "PREAUTH":
            self._fire(T.PREAUTH)

    def _continuation_from_server(self) -> bool:
        """A ``+``: True to forward it to the client."""
        pending, idle = self._pending, self._idle
        if pending is not None and self._prelogin is not None:
            # The routed login is the proxy's exchange: the next piece, or a cancel.
            data = pending.steps.pop(0) if pending.steps else pending.on_challenge
            self.events.append(ToUpstream(data))
            return False
        if idle is not None and not idle.started:
            idle.started = True
            if idle.restart:
                idle.restart = False
                return False
            if self._facts:
                self.events.append(IdleStarted(idle.tag))
        return True

    def _tagged(self, response: Response) -> _Shown:
        """A completion, and who may see it: the client, later layers only, or nobody."""
        tag = response.tag
        assert tag is not None
        ok = response.name == "OK"
        if tag in self.own_tags:
            del self.own_tags[tag]
            if self._facts:
                self.events.append(Completed(tag, response.name, response.code, own=True))
            return _OWN
        idle = self._idle
        if idle is not None and idle.tag == tag and idle.restart and not idle.started:
            return _HIDDEN  # the end of the IDLE the proxy interrupted: the client's goes on
        command = self.in_flight.pop(tag, None)
        if command is None:
            return _SHOWN
        if tag == self._current and self._current_literal:
            # Answered instead of invited with "+": the client will not send its literal.
            self.events.append(CancelLiteral())
            self._current = None
        name = command.name
        if self._pending is not None and self._pending.tag == tag:
            self._login_answered(ok)
        elif name in _SELECTS:
            self._selecting -= 1
            if ok and command.mailbox is not None:
                self.selected = command.mailbox
                self.read_only = name == "EXAMINE" or response.code == "READ-ONLY"
                self._fire(T.SELECT_OK)
                if self._facts:
                    self.events.append(Selected(command.mailbox, self.read_only, self.exists))
            else:
                self._deselect(T.SELECT_FAILED)
        elif name in ("CLOSE", "UNSELECT") and ok:
            self._deselect(T.UNSELECTED)
        elif name == "IDLE" and idle is not None and idle.tag == tag:
            self._idle = None
            self._fire(T.IDLE_ENDED)
        elif name in ("LOGIN", "AUTHENTICATE"):
            self._fire(T.LOGIN_OK if ok else T.LOGIN_FAILED)
        if self._facts:
            self.events.append(Completed(tag, response.name, response.code))
        return _SHOWN

    def _login_answered(self, ok: bool) -> None:
        pending, self._pending = self._pending, None
        assert pending is not None
        if not self._fire(T.LOGIN_OK if ok else T.LOGIN_FAILED) or not ok:
            return
        self._prelogin, self.relaying = None, True  # from here on the client's bytes go upstream
        self.user = pending.user
        self.events.append(LoggedIn(pending.tag, pending.user, pending.secret))

    def _deselect(self, trigger: Trigger) -> None:
        mailbox, self.selected, self.exists = self.selected, None, None
        self._fire(trigger)
        if mailbox is not None and self._facts:
            self.events.append(Deselected(mailbox))

    def connection_lost(self) -> None:
        self._fire(T.CONNECTION_LOST)
        self._pending = None

    # -- the proxy's own commands ----------------------------------------------------------------

    def own_command(self, name: str, *, anytime: bool = False) -> tuple[str, bytes] | None:
        """A command of the proxy's own for the upstream, between client commands: its tag and
        bytes, or None when another command now would corrupt the stream (IDLE, a SASL
        exchange, a login, or the client in the middle of a message)."""
        if not anytime and self.state not in (S.AUTHENTICATED, S.SELECTED):
            return None
        tag = self._next_tag()
        self.own_tags[tag] = name
        return tag, f"{tag} {name}\r\n".encode()

    def _next_tag(self) -> str:
        self._tag_count += 1
        return f"{self._tag_prefix}{self._tag_count}"

    def restart_idle(self) -> tuple[str, bytes] | None:
        """In the client's IDLE: end it, run our own NOOP, and IDLE again under its tag.

        The server then reports every pending change before the NOOP completes, as it would
        outside IDLE. The end of the first IDLE and the second ``+`` are the proxy's, so the
        client sees one unbroken IDLE. None when the client is not idling (or said DONE).
        """
        idle = self._idle
        if idle is None or not self.idling:
            return None
        tag = self._next_tag()
        self.own_tags[tag] = "NOOP"
        idle.restart, idle.started = True, False
        return tag, f"DONE\r\n{tag} NOOP\r\n{idle.tag} IDLE\r\n".encode()


def _bytes(token: object) -> bytes:
    return token if isinstance(token, bytes) else str(token).encode()


def _login_args(command: Command) -> tuple[str | None, str | None]:
    args = command.args
    if len(args) < 2 or isinstance(args[0], tuple) or isinstance(args[1], tuple):
        return command.login_user, None
    return command.login_user, _bytes(args[1]).decode("utf-8", "replace")


def _uid_count(line: bytes) -> int:
    """How many UIDs a ``* VANISHED`` line names (ranges counted, bounded)."""
    parts = line.split()
    total = 0
    for part in parts[2].split(b",") if len(parts) > 2 else ():
        first, _, last = part.partition(b":")
        if first.isdigit() and (not last or last.isdigit()):
            low, high = sorted((int(first), int(last or first)))
            total += min(high - low, 100_000) + 1
    return total
