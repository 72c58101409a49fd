"""The relay's quick reads agree with the general ones they stand in for.

A client's command in one read is taken whole (``Framer.whole_line``, then
``ImapSession.client_command``) instead of as a Line and a MessageEnd; the number in an untagged
status's code is read with the response (``Response.value``). Each must read exactly what the
general path reads, for any input: these properties check that over generated streams.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.imap import session_events as ev
from commsproxy.imap.errors import valid_tag
from commsproxy.imap.framer import NEED_DATA, Framer, FramingError, Line, MessageEnd
from commsproxy.imap.grammar import code_number, parse_response
from commsproxy.imap.session import _TAG, ImapSession
from tests.unit.session_transcript import Wire, logged_in

FAST = settings(max_examples=300, deadline=None)
MAX_HEAD = 16

# Pieces of client lines, the tricky ones included: literal announcements, braces, bare LF.
pieces = st.sampled_from(
    [
        *(b"a1", b" ", b"SELECT", b"INBOX", b"NOOP", b"{3}", b"{3+}", b"~{2}", b"}", b"{"),
        *(b"x" * 20, b"\r\n", b"\n", b"\r", b"abc", b"UID FETCH 1:* FLAGS", b"DONE"),
    ]
)
# Mostly whole lines, as clients send them; the pieces above make the rest.
words = st.sampled_from([b"a1", b"SELECT", b"INBOX", b"NOOP", b"{3}", b"x" * 30, b"}", b"{2+}"])
lines = st.tuples(
    st.one_of(
        st.lists(words, max_size=4).map(b" ".join), st.lists(pieces, max_size=6).map(b"".join)
    ),
    st.sampled_from([b"\r\n", b"\n"]),
).map(b"".join)


def _events(framer: Framer) -> list[object]:
    out: list[object] = []
    while (event := framer.next_event()) is not NEED_DATA:
        out.append(event)
    return out


@FAST
@given(
    chunks=st.lists(st.lists(lines, min_size=1, max_size=3), max_size=8),
    max_line=st.integers(4, 64),
)
def test_a_whole_line_is_what_the_events_would_give(
    chunks: list[list[bytes]], max_line: int
) -> None:
    """Fed the same reads (one line each, mostly), a framer asked for a whole line first hands
    out the same events as one that is not."""
    quick = Framer(max_line=max_line, max_head=MAX_HEAD)
    plain = Framer(max_line=max_line, max_head=MAX_HEAD)
    for chunk in map(b"".join, chunks):
        quick.receive_data(chunk)
        plain.receive_data(chunk)
        try:
            expected = _events(plain)
        except FramingError as err:
            expected = [type(err)]
        buffered = quick.buffered
        line = quick.whole_line()
        if line is None:
            assert quick.buffered == buffered  # nothing taken
            try:
                got = _events(quick)
            except FramingError as err:
                got = [type(err)]
        else:
            got = [Line(line, True, None), MessageEnd(line[:MAX_HEAD], len(line) > MAX_HEAD)]
            got += _events(quick)
        assert got == expected
        if expected and isinstance(expected[0], type):
            return  # both refused the stream


commands = st.sampled_from(
    [
        *(b"a1 SELECT INBOX", b"a2 EXAMINE Sent", b"a3 NOOP", b"a4 IDLE", b"DONE", b"a5 LOGOUT"),
        *(b"a6 UID FETCH 1:* (FLAGS)", b"a7 STATUS INBOX (MESSAGES)", b"a+8 NOOP", b"", b"*"),
        *(b"a9 CLOSE", b'a10 SELECT "Entw&APw-rfe"', b"a11 STARTTLS", b"a12 COMPRESS DEFLATE"),
    ]
)


@FAST
@given(st.lists(st.tuples(commands, st.sampled_from([b"\r\n", b"\n"])), max_size=12))
def test_a_command_taken_whole_moves_the_machine_as_its_line_and_end_do(
    lines: list[tuple[bytes, bytes]],
) -> None:
    quick, plain = logged_in(), logged_in()
    for command, end in lines:
        data = command + end
        assert quick.machine.client_command(data) == _line_and_end(plain.machine, data)
        assert quick.machine.sent == plain.machine.sent
        assert _facts(quick) == _facts(plain)
        assert quick.machine.drain() == plain.machine.drain()


def _line_and_end(machine: ImapSession, data: bytes) -> bool:
    forward = machine.client_line(Line(data, True, None))
    machine.client_message_end(MessageEnd(data, False))
    return forward


def _facts(wire: Wire) -> tuple[object, ...]:
    m = wire.machine
    return (m.state, dict(m.in_flight), m.selecting, m.idle_tag, m.commands, m._current)


codes = st.sampled_from([b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"ALERT", b"CLOSED", b"uidnext"])
values = st.sampled_from([b"", b" 42", b" 0", b" x1", b" 7 8", b" 00012", b" 4294967295"])


@FAST
@given(code=codes, value=values, text=st.sampled_from([b"", b" Predicted", b" [x] y"]))
def test_the_value_of_an_untagged_code_is_its_number(
    code: bytes, value: bytes, text: bytes
) -> None:
    line = b"* OK [" + code + value + b"]" + text + b"\r\n"
    response = parse_response(line)
    assert response.value == code_number(line)
    assert response.value == (int(value) if value.strip().isdigit() else None)
    assert parse_response(b"a1 OK [" + code + value + b"] done\r\n").value is None  # tagged


def test_the_quick_tag_check_is_valid_tag() -> None:
    for code in range(0x110):
        char = chr(code)
        assert (_TAG.fullmatch(char) is not None) == valid_tag(char), repr(char)
        assert (_TAG.fullmatch("a" + char + "1") is not None) == valid_tag("a" + char + "1")
    assert _TAG.fullmatch("") is None
    assert not valid_tag("")


_FACTS = (ev.Selected, ev.Deselected, ev.Completed, ev.IdleStarted, ev.IdleDone, ev.Bye)
_SCRIPT = [
    ("c", b"a LOGIN me pw\r\n"),
    ("s", b"a OK logged in\r\n"),
    ("c", b"b SELECT INBOX\r\n"),
    ("s", b"* 3 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 9] n\r\n"),
    ("s", b"b OK [READ-WRITE] sel\r\n"),
    ("c", b"c IDLE\r\n"),
    ("s", b"+ idling\r\n* 4 EXISTS\r\n"),
    ("c", b"DONE\r\n"),
    ("s", b"c OK idle done\r\n"),
    ("c", b"d EXAMINE Sent\r\n"),
    ("s", b"* OK [CLOSED] x\r\n* 0 EXISTS\r\nd OK [READ-ONLY] ex\r\n"),
    ("c", b"e CLOSE\r\n"),
    ("s", b"e OK closed\r\n* BYE bye\r\n"),
]


def test_a_machine_without_facts_moves_and_asks_the_same() -> None:
    """The relay's machine (``facts=False``) keeps the same state, says the same to both
    sides and asks the same of its driver; it only leaves out the facts."""
    with_facts, without = Wire(ImapSession()), Wire(ImapSession(facts=False))
    for side, data in _SCRIPT:
        for wire in (with_facts, without):
            (wire.from_client if side == "c" else wire.from_server)(data)
        assert _facts(with_facts) == _facts(without)
        assert (with_facts.machine.exists, with_facts.machine.uidnext) == (
            without.machine.exists,
            without.machine.uidnext,
        )
        assert (with_facts.sent(), with_facts.received()) == (without.sent(), without.received())
    assert [e for e in with_facts.events if not isinstance(e, _FACTS)] == without.events
    assert {type(e) for e in with_facts.events} >= set(_FACTS)  # every kind of fact was told
    assert not any(isinstance(e, _FACTS) for e in without.events)
