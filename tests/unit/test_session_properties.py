"""Any interleaving of valid client commands and server responses keeps the machine consistent.

A small model of an IMAP server answers the commands the client pipelines, in any order the
draw picks, with untagged data and the proxy's own commands mixed in. After every step the
machine must agree with the model: the commands in flight are exactly the unanswered client
tags, a mailbox is selected only after the server's OK, there is never more than one IDLE, and
the proxy's own tags never mix with the client's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.imap.session import State
from tests.unit.session_transcript import Wire, logged_in

MAILBOXES = ("INBOX", "Sent", "Nope")


@dataclass
class Model:
    unanswered: dict[str, str] = field(default_factory=dict)  # tag -> command (+ mailbox)
    selected: str | None = None
    idle: str | None = None
    idle_confirmed: bool = False
    done_sent: bool = False
    next_tag: int = 0

    def tag(self) -> str:
        self.next_tag += 1
        return f"t{self.next_tag}"


def step(wire: Wire, model: Model, choice: int, pick: int) -> None:
    machine = wire.machine
    if model.idle is not None:
        if not model.idle_confirmed:
            wire.from_server(b"+ idling\r\n")
            model.idle_confirmed = True
        elif choice % 3 == 0 and not model.done_sent:
            wire.from_client(b"DONE\r\n")
            model.done_sent = True
        elif choice % 3 == 1 and model.done_sent:
            wire.from_server(f"{model.idle} OK IDLE done\r\n".encode())
            del model.unanswered[model.idle]
            model.idle, model.idle_confirmed, model.done_sent = None, False, False
        else:
            wire.from_server(b"* %d EXISTS\r\n" % (pick + 1))
        return
    if choice == 0 and not model.unanswered:
        tag = model.tag()
        wire.from_client(f"{tag} IDLE\r\n".encode())
        model.unanswered[tag] = "IDLE"
        model.idle = tag
    elif choice in (1, 2):
        tag, mailbox = model.tag(), MAILBOXES[pick % 3]
        name = "SELECT" if choice == 1 else "EXAMINE"
        wire.from_client(f"{tag} {name} {mailbox}\r\n".encode())
        model.unanswered[tag] = f"SELECT {mailbox}"
    elif choice == 3:
        tag = model.tag()
        wire.from_client(f"{tag} {('NOOP', 'CLOSE', 'CHECK')[pick % 3]}\r\n".encode())
        model.unanswered[tag] = ("NOOP", "CLOSE", "CHECK")[pick % 3]
    elif choice == 4 and model.unanswered:
        # The server answers one of the unanswered commands (servers may reorder some).
        tags = sorted(model.unanswered)
        tag = tags[pick % len(tags)]
        command = model.unanswered.pop(tag)
        ok = not command.endswith("Nope")
        if command.startswith("SELECT"):
            wire.from_server(b"* 3 EXISTS\r\n")
            model.selected = command.split()[1] if ok else None
        elif command == "CLOSE" and ok:
            model.selected = None
        status = b"OK" if ok else b"NO"
        wire.from_server(tag.encode() + b" " + status + b" done\r\n")
    elif choice == 5:
        wire.from_server((b"* %d EXISTS\r\n" % (pick + 1), b"* 1 EXPUNGE\r\n")[pick % 2])
    elif choice == 6 and not wire.client_framer.in_message:
        own = machine.own_command("NOOP")
        if own is not None:
            wire.from_server(b"* 2 EXISTS\r\n" + own[0].encode() + b" OK NOOP\r\n")


def check(wire: Wire, model: Model) -> None:
    machine = wire.machine
    assert set(machine.in_flight) == set(model.unanswered)
    assert machine.selected == model.selected
    assert not set(machine.own_tags) & set(machine.in_flight)
    assert machine.own_tags == {}  # every own command here is answered at once
    idles = [c for c in machine.in_flight.values() if c.name == "IDLE"]
    assert len(idles) <= 1
    assert machine.idle_tag == model.idle
    if model.idle is not None:
        assert machine.state is State.IDLE
        assert machine.own_command("NOOP") is None  # nothing of ours inside the client's IDLE
    elif model.selected is not None:
        assert machine.state is State.SELECTED
    else:
        assert machine.state is State.AUTHENTICATED
    assert machine.selecting == any(c.startswith("SELECT") for c in model.unanswered.values())
    assert b"cp" not in bytes(wire.client)  # no reply to our own commands reaches the client


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 50)), max_size=60))
def test_any_interleaving_keeps_the_machine_consistent(steps: list[tuple[int, int]]) -> None:
    wire, model = logged_in(), Model()
    for choice, pick in steps:
        step(wire, model, choice, pick)
        check(wire, model)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 50)), max_size=40))
def test_client_bytes_go_upstream_unchanged(steps: list[tuple[int, int]]) -> None:
    """Whatever happens, the server receives exactly what the client sent (own commands aside,
    which the relay writes itself)."""
    wire, model = logged_in(), Model()
    client_sent = bytearray()
    original = wire.from_client

    def recording(data: bytes) -> None:
        client_sent.extend(data)
        original(data)

    wire.from_client = recording  # type: ignore[method-assign]
    for choice, pick in steps:
        step(wire, model, choice, pick)
    assert wire.sent() == bytes(client_sent)
