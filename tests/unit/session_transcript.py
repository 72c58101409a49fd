"""Driving the session machine with bytes, as the relay does: a tiny transcript harness."""

from __future__ import annotations

from dataclasses import dataclass, field

from commsproxy.imap import session_events as ev
from commsproxy.imap.framer import Framer, Line, LiteralData, MessageEnd
from commsproxy.imap.session import ImapSession


@dataclass
class Wire:
    """One machine with a framer per direction; records what each side would receive."""

    machine: ImapSession = field(default_factory=ImapSession)
    client_framer: Framer = field(default_factory=Framer)
    server_framer: Framer = field(default_factory=lambda: Framer(max_head=0))
    upstream: bytearray = field(default_factory=bytearray)  # what the server receives
    client: bytearray = field(default_factory=bytearray)  # what the client receives
    events: list[ev.Event] = field(default_factory=list)

    def from_client(self, data: bytes) -> None:
        self.client_framer.receive_data(data)
        for event in self.client_framer.events():
            if isinstance(event, Line):
                if self.machine.client_line(event):
                    self.upstream += event.data
            elif isinstance(event, LiteralData):
                if self.machine.relaying:
                    self.upstream += event.data
            elif isinstance(event, MessageEnd):
                self.machine.client_message_end(event)
            self._take()

    def from_server(self, data: bytes) -> None:
        self.server_framer.receive_data(data)
        for event in self.server_framer.events():
            if isinstance(event, Line) and event.first:
                self.client += self.machine.server_line(event.data)[0]
            elif isinstance(event, Line | LiteralData):
                self.client += event.data
        self._take()

    def _take(self) -> None:
        for event in self.machine.drain():
            self.events.append(event)
            if isinstance(event, ev.Answer):
                self.client += event.data
            elif isinstance(event, ev.ToUpstream):
                self.upstream += event.data
            elif isinstance(event, ev.CancelLiteral):
                self.client_framer.cancel_literal()

    def of(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [event for event in self.events if isinstance(event, kind)]

    def sent(self) -> bytes:
        out, self.upstream = bytes(self.upstream), bytearray()
        return out

    def received(self) -> bytes:
        out, self.client = bytes(self.client), bytearray()
        return out


def logged_in(user: bytes = b"me", **kwargs: bool) -> Wire:
    wire = Wire(ImapSession(**kwargs))
    wire.from_client(b"a LOGIN " + user + b" pw\r\n")
    wire.from_server(b"a OK logged in\r\n")
    wire.sent(), wire.received()
    return wire


def selected(mailbox: bytes = b"INBOX", exists: int = 3) -> Wire:
    wire = logged_in()
    wire.from_client(b"s SELECT " + mailbox + b"\r\n")
    wire.from_server(b"* %d EXISTS\r\ns OK [READ-WRITE] selected\r\n" % exists)
    wire.sent(), wire.received()
    return wire
