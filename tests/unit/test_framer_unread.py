"""The framer's unread runs: responses nobody reads pass in chunks, the rest as before.

The relay's upstream framer hands on runs of messages whose first line matches the session's
``UNREAD_RESPONSES`` (FETCH data, LIST, SEARCH...) as one ``Unread`` each, and every other first
line as a ``Line`` for the session machine. The properties: the bytes come out exactly as they
went in, however the stream is cut; every line the machine needs comes out as a first Line,
none of the unread ones do; bounds hold as before.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.imap.framer import (
    NEED_DATA,
    Event,
    Framer,
    Line,
    LineTooLong,
    LiteralData,
    LiteralTooLarge,
    Unread,
    _literal_size,
    parse_announcement,
)
from commsproxy.imap.session import UNREAD_RESPONSES

FAST = settings(max_examples=300, deadline=None)
UNREAD = re.compile(UNREAD_RESPONSES)


def framer(**kwargs: int) -> Framer:
    return Framer(max_head=0, unread=UNREAD_RESPONSES, **kwargs)


def run(f: Framer, chunks: list[bytes]) -> list[Event]:
    out: list[Event] = []
    for chunk in chunks:
        f.receive_data(chunk)
        out += f.events()
    return out


def data_of(events: list[Event]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Line | LiteralData | Unread))


def first_lines(events: list[Event]) -> list[bytes]:
    return [e.data for e in events if isinstance(e, Line) and e.first]


@pytest.mark.parametrize(
    ("line", "read"),
    [
        (b"* 12 FETCH (FLAGS (\\Seen))\r\n", False),
        (b"* 3 fetch (UID 4)\r\n", False),
        (b"* 4 RECENT\r\n", False),
        (b'* LIST (\\HasNoChildren) "/" INBOX\r\n', False),
        (b"* SEARCH 1 2 3\r\n", False),
        (b"* STATUS INBOX (MESSAGES 3)\r\n", False),
        (b"* FLAGS (\\Seen)\r\n", False),
        (b"* 5 EXISTS\r\n", True),
        (b"* 5 exists\r\n", True),
        (b"* 5  EXISTS\r\n", True),  # a second blank: read, the grammar splits on blanks
        (b"* 5\tEXPUNGE\r\n", True),
        (b"* 5 EXPUNGE\r\n", True),
        (b"* 123456789012345678901 FETCH (UID 1)\r\n", True),  # more digits than allowed
        (b"* OK [CAPABILITY IMAP4rev1] hi\r\n", True),
        (b"* ok [CLOSED]\r\n", True),
        (b"* OK [CLOSED] Previous mailbox closed\r\n", True),
        (b"* OK [UIDNEXT 4392] Predicted next UID\r\n", True),
        (b"* OK [UIDVALIDITY 3857529045] UIDs valid\r\n", True),
        (b"* OK [uidnext 4392]\r\n", True),
        (b"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Limited\r\n", False),
        (b"* OK [UNSEEN 12] First unseen\r\n", False),
        (b"* OK [HIGHESTMODSEQ 715194045007] Highest\r\n", False),
        (b"* OK Still here\r\n", False),
        (b"* NO trouble\r\n", True),
        (b"* BAD what\r\n", True),
        (b"* BYE over\r\n", True),
        (b"* PREAUTH hi\r\n", True),
        (b"* CAPABILITY IMAP4rev1\r\n", True),
        (b"* VANISHED 3:4\r\n", True),
        (b"* ENABLED QRESYNC\r\n", True),
        (b"*  OK x\r\n", True),
        (b"a1 OK done\r\n", True),
        (b"+ idling\r\n", True),
        (b"+\r\n", True),
    ],
)
def test_which_responses_are_read(line: bytes, read: bool) -> None:
    events = run(framer(), [line])
    assert data_of(events) == line
    assert (first_lines(events) == [line]) is read
    assert all(isinstance(e, Unread) for e in events) is not read


def test_a_fetch_flood_is_one_chunk_and_its_tagged_reply_a_line() -> None:
    flood = b"".join(b"* %d FETCH (FLAGS (\\Seen) UID %d)\r\n" % (i, i) for i in range(1, 5001))
    stream = flood + b"a7 OK Fetch completed\r\n"
    events = run(framer(), [stream])
    assert events == [Unread(flood), Line(b"a7 OK Fetch completed\r\n", True, None)]


def test_literals_pass_inside_the_run_and_are_never_read() -> None:
    body = b"Subject: x\r\n\r\na1 OK not a reply\r\n* 9 EXISTS\r\n{5}\r\n"
    msg = b"* 1 FETCH (UID 7 BODY[] {%d}\r\n%s)\r\n" % (len(body), body)
    msg2 = b"* 2 FETCH (UID 8 BODY[] ~{3}\r\nabc FLAGS (\\Seen))\r\n"
    stream = msg + msg2 + b"* 3 EXISTS\r\n" + msg + b"a2 OK done\r\n"
    events = run(framer(), [stream])
    assert first_lines(events) == [b"* 3 EXISTS\r\n", b"a2 OK done\r\n"]
    assert data_of(events) == stream
    assert [type(e) for e in events] == [Unread, Line, Unread, Line]


def test_a_big_literal_streams_through_in_the_chunks_it_came_in() -> None:
    body = b"x" * 100_000
    stream = b"* 1 FETCH (BODY[] {100000}\r\n" + body + b")\r\na1 OK done\r\n"
    chunks = [stream[i : i + 8192] for i in range(0, len(stream), 8192)]
    f = framer()
    sizes = []
    for chunk in chunks:
        f.receive_data(chunk)
        events = f.events()
        sizes.append(sum(len(e.data) for e in events if isinstance(e, Unread)))
    # Everything of the FETCH goes on as it arrives, never held back for a whole line or more.
    assert sizes[:-1] == [len(c) for c in chunks[:-1]]


def test_paused_frames_every_line_as_before() -> None:
    stream = b"* 1 FETCH (FLAGS ())\r\n* 2 FETCH (BODY[] {3}\r\nabc)\r\na1 OK done\r\n"
    f = framer()
    f.passing = False
    events = run(f, [stream])
    assert first_lines(events) == [
        b"* 1 FETCH (FLAGS ())\r\n",
        b"* 2 FETCH (BODY[] {3}\r\n",
        b"a1 OK done\r\n",
    ]
    assert not any(isinstance(e, Unread) for e in events)


def test_switching_mid_stream_keeps_message_boundaries() -> None:
    f = framer()
    f.receive_data(b"* 1 FETCH (BODY[] {3}\r\nab")
    assert f.events() == [Unread(b"* 1 FETCH (BODY[] {3}\r\nab")]
    f.passing = False  # paused mid-message: the rest of it is not a first line
    f.receive_data(b"c)\r\n* 2 FETCH (UID 2)\r\n")
    events = f.events()
    assert data_of(events) == b"c)\r\n* 2 FETCH (UID 2)\r\n"
    assert first_lines(events) == [b"* 2 FETCH (UID 2)\r\n"]


def test_a_long_line_in_a_run_still_raises() -> None:
    f = framer(max_line=64)
    ok = b"* 1 FETCH (FLAGS ())\r\n"
    f.receive_data(ok + b"* 2 FETCH (" + b"x" * 80 + b")\r\n")
    with pytest.raises(LineTooLong):
        f.events()


def test_a_line_at_the_bound_passes_as_before() -> None:
    line = b"* 1 FETCH (" + b"x" * 50 + b")\r\n"
    assert len(line) == 64
    events = run(framer(max_line=64), [line])
    assert data_of(events) == line


def test_a_literal_over_the_bound_in_a_run_is_refused_as_before() -> None:
    f = framer(max_literal=10)
    f.receive_data(b"* 1 FETCH (FLAGS ())\r\n* 2 FETCH (BODY[] {11}\r\n")
    assert f.next_event() == Unread(b"* 1 FETCH (FLAGS ())\r\n")
    with pytest.raises(LiteralTooLarge):
        f.next_event()


SELECT_ANSWER = (
    b"* OK [CLOSED] Previous mailbox closed.\r\n"
    b"* FLAGS (\\Answered \\Seen $Triaged)\r\n"
    b"* OK [PERMANENTFLAGS (\\Answered \\Seen $Triaged \\*)] Flags permitted.\r\n"
    b"* 100 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
    b"* OK [UIDVALIDITY 1796675069] UIDs valid\r\n* OK [UIDNEXT 101] Predicted next UID\r\n"
    b"a3 OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"
)


def test_a_select_answer_comes_as_its_lines_at_once() -> None:
    f = framer()
    f.receive_data(SELECT_ANSWER)
    lines = f.short_lines()
    assert lines == SELECT_ANSWER.splitlines(keepends=True)
    assert (f.buffered, f.in_message) == (0, False)
    assert f.unread_start is not None
    read = [line for line in lines if not f.unread_start.match(line)]
    # The same lines the machine reads when they come one event at a time.
    assert read == first_lines(run(framer(), [SELECT_ANSWER]))
    assert f.next_event() is NEED_DATA


@pytest.mark.parametrize(
    "held",
    [
        b"a1 OK done\r\n* 3 EXI",  # the last line is not whole
        b"* 1 FETCH (BODY[] {3}\r\nabc)\r\n",  # a literal
        b"* 1 FETCH (BODY[] {3}\nabc)\n",
        b"* 2 FETCH (FLAGS ())\r\n" * 200,  # more than a few lines' worth
        b"* 2 FETCH (UID 3)\r\n" * 17,  # more than a few lines
        b"",
    ],
)
def test_anything_else_is_left_to_the_events(held: bytes) -> None:
    f = framer()
    f.receive_data(held)
    assert f.short_lines() is None
    assert data_of(f.events()) == held[: held.rfind(b"\n") + 1]  # taken as ever


def test_not_in_the_middle_of_a_message() -> None:
    f = framer()
    f.receive_data(b"* 1 FETCH (BODY[] {3}\r\nab")
    f.events()
    f.receive_data(b"c)\r\na1 OK done\r\n")  # the rest of the literal first
    assert f.short_lines() is None
    assert data_of(f.events()) == b"c)\r\na1 OK done\r\n"
    assert Framer(max_line=64).short_lines() is None  # not for a reader of heads


def test_unread_needs_no_heads() -> None:
    with pytest.raises(ValueError, match="max_head"):
        Framer(unread=UNREAD_RESPONSES)


# -- properties over generated streams ------------------------------------------------------

first = st.sampled_from(
    [
        b"* %d FETCH (FLAGS (\\Seen))",
        b"* %d FETCH (UID 9 BODY[] ",
        b"* %d EXISTS",
        b"* %d EXPUNGE",
        b"* %d RECENT",
        b"* OK [UIDNEXT %d]",
        b"* SEARCH %d",
        b"a%d OK done",
        b"+ go %d",
        b'* LIST () "/" x%d',
        b"* VANISHED %d",
    ]
)
bodies = st.lists(
    st.one_of(
        st.binary(max_size=10),
        st.sampled_from([b"\r\n", b"}\r\n", b"* 1 EXISTS\r\n", b"a1 OK\r\n", b"{3}\r\n", b"}"]),
    ),
    max_size=5,
).map(b"".join)


@st.composite
def messages(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(message bytes, its first line)."""
    head = draw(first) % draw(st.integers(1, 99999))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    literals = draw(st.lists(bodies, max_size=2))
    if not literals:
        line = head + b")" + eol if b"BODY" in head else head + eol
        return line, line
    out = b""
    line1 = b""
    for i, body in enumerate(literals):
        kind = draw(st.sampled_from([b"{%d}", b"~{%d}", b"{%d+}"])) % len(body)
        line = (head if i == 0 else b" X ") + kind + eol
        line1 = line1 or line
        out += line + body
    return out + b")" + eol, line1


@FAST
@given(st.lists(messages(), max_size=12), st.lists(st.integers(0, 400), max_size=6))
def test_any_stream_cut_anywhere(msgs: list[tuple[bytes, bytes]], cuts: list[int]) -> None:
    stream = b"".join(m for m, _ in msgs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = zip([0, *points], [*points, len(stream)], strict=True)
    chunks = [stream[a:b] for a, b in bounds if b > a]  # b"" would mean the end
    events = run(framer(), chunks)
    assert data_of(events) == stream
    wanted = [line for _, line in msgs if not UNREAD.match(line)]
    assert first_lines(events) == wanted
    # Taking whole short reads as lines where the framer offers them changes nothing.
    f, data, read = framer(), b"", []
    for chunk in chunks:
        f.receive_data(chunk)
        if (lines := f.short_lines()) is not None:
            data += b"".join(lines)
            read += [line for line in lines if not UNREAD.match(line)]
        else:
            events = f.events()
            data += data_of(events)
            read += first_lines(events)
    assert (data, read) == (stream, wanted)
    # The same stream framed line by line (paused) reads every first line.
    f = framer()
    f.passing = False
    assert first_lines(run(f, chunks)) == [line for _, line in msgs]


@FAST
@given(
    st.lists(
        st.sampled_from([b"{", b"}", b"~", b"+", b"-", b"0", b"7", b"12", b"x", b" ", b"\r"]),
        max_size=12,
    ).map(b"".join),
    st.binary(max_size=4),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_literal_sizes_read_as_parse_announcement_does(
    line: bytes, before: bytes, eol: bytes
) -> None:
    data = before + line + eol
    spec = parse_announcement(line + eol)
    assert _literal_size(data, len(before), len(data)) == (spec.size if spec else -1)


@FAST
@given(st.lists(messages(), min_size=1, max_size=12), st.lists(st.integers(0, 400), max_size=6))
def test_the_end_of_a_run_is_found_the_same_however_long_the_buffer(
    msgs: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    """A run's end in a buffer no line of which can break the bound is found in one search;
    with a bound so tight that most buffers are longer, line by line: the same events."""
    stream = b"".join(m for m, _ in msgs)
    points = sorted({c % (len(stream) + 1) for c in cuts})
    bounds = zip([0, *points], [*points, len(stream)], strict=True)
    chunks = [stream[a:b] for a, b in bounds if b > a]
    longest = max(len(line) for line in stream.splitlines(keepends=True))
    searched = run(framer(), chunks)
    stepped = run(framer(max_line=longest + 26), chunks)
    assert stepped == searched
