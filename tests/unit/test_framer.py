"""The sans-IO IMAP framer: byte tables in, events out, bounds and end-of-stream handling."""

from __future__ import annotations

import pytest

from commsproxy.imap.framer import (
    NEED_DATA,
    Event,
    Framer,
    IncompleteMessage,
    Line,
    LineTooLong,
    LiteralData,
    LiteralSpec,
    LiteralTooLarge,
    MessageEnd,
    parse_announcement,
)

SYNC = LiteralSpec(5, synchronizing=True, binary=False)


def feed(framer: Framer, *chunks: bytes) -> list[Event]:
    """Feed each chunk and drain the events after it."""
    out: list[Event] = []
    for chunk in chunks:
        framer.receive_data(chunk)
        out += framer.events()
    return out


def end(message: bytes) -> MessageEnd:
    return MessageEnd(message, truncated=False)


LOGIN_TWO_LITERALS = b"a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n"
BODY_WITH_COMMANDS = b"Subject: hi\r\n\r\na1 LOGOUT\r\nb2 LOGIN x y\r\n{5}\r\n"
APPEND_HEADER = b"a1 APPEND INBOX {%d}\r\n" % len(BODY_WITH_COMMANDS)

FRAMING_TABLE: list[tuple[str, bytes, list[Event]]] = [
    (
        "plain line",
        b"a1 NOOP\r\n",
        [Line(b"a1 NOOP\r\n", True, None), end(b"a1 NOOP\r\n")],
    ),
    (
        "two plain lines are two messages",
        b"a1 NOOP\r\na2 CAPABILITY\r\n",
        [
            Line(b"a1 NOOP\r\n", True, None),
            end(b"a1 NOOP\r\n"),
            Line(b"a2 CAPABILITY\r\n", True, None),
            end(b"a2 CAPABILITY\r\n"),
        ],
    ),
    (
        "synchronizing literal",
        b"a1 APPEND INBOX {5}\r\nhello\r\n",
        [
            Line(b"a1 APPEND INBOX {5}\r\n", True, SYNC),
            LiteralData(b"hello"),
            Line(b"\r\n", False, None),
            end(b"a1 APPEND INBOX {5}\r\nhello\r\n"),
        ],
    ),
    (
        "LITERAL+ literal",
        b"a1 APPEND INBOX {5+}\r\nhello\r\n",
        [
            Line(b"a1 APPEND INBOX {5+}\r\n", True, LiteralSpec(5, False, False)),
            LiteralData(b"hello"),
            Line(b"\r\n", False, None),
            end(b"a1 APPEND INBOX {5+}\r\nhello\r\n"),
        ],
    ),
    (
        "LITERAL- literal",
        b"a1 APPEND INBOX {5-}\r\nhello\r\n",
        [
            Line(b"a1 APPEND INBOX {5-}\r\n", True, LiteralSpec(5, False, False)),
            LiteralData(b"hello"),
            Line(b"\r\n", False, None),
            end(b"a1 APPEND INBOX {5-}\r\nhello\r\n"),
        ],
    ),
    (
        "binary literal",
        b"a1 APPEND INBOX ~{5}\r\nh\x00\xffo\n\r\n",
        [
            Line(b"a1 APPEND INBOX ~{5}\r\n", True, LiteralSpec(5, True, True)),
            LiteralData(b"h\x00\xffo\n"),
            Line(b"\r\n", False, None),
            end(b"a1 APPEND INBOX ~{5}\r\nh\x00\xffo\n\r\n"),
        ],
    ),
    (
        "binary LITERAL+ literal",
        b"a1 APPEND INBOX ~{2+}\r\nhi\r\n",
        [
            Line(b"a1 APPEND INBOX ~{2+}\r\n", True, LiteralSpec(2, False, True)),
            LiteralData(b"hi"),
            Line(b"\r\n", False, None),
            end(b"a1 APPEND INBOX ~{2+}\r\nhi\r\n"),
        ],
    ),
    (
        "several literals in one message",
        LOGIN_TWO_LITERALS,
        [
            Line(b"a1 LOGIN {5}\r\n", True, SYNC),
            LiteralData(b"alice"),
            Line(b" {6}\r\n", False, LiteralSpec(6, True, False)),
            LiteralData(b"secret"),
            Line(b"\r\n", False, None),
            end(LOGIN_TWO_LITERALS),
        ],
    ),
    (
        "zero-length literal gives no LiteralData",
        b'a1 LOGIN {0}\r\n "pw"\r\n',
        [
            Line(b"a1 LOGIN {0}\r\n", True, LiteralSpec(0, True, False)),
            Line(b' "pw"\r\n', False, None),
            end(b'a1 LOGIN {0}\r\n "pw"\r\n'),
        ],
    ),
    (
        "literal with CRLF, commands and an announcement inside",
        APPEND_HEADER + BODY_WITH_COMMANDS + b"\r\n",
        [
            Line(APPEND_HEADER, True, LiteralSpec(len(BODY_WITH_COMMANDS), True, False)),
            LiteralData(BODY_WITH_COMMANDS),
            Line(b"\r\n", False, None),
            end(APPEND_HEADER + BODY_WITH_COMMANDS + b"\r\n"),
        ],
    ),
    (
        "bare LF line endings",
        b"a1 LOGIN {5}\nalice x\na2 NOOP\n",
        [
            Line(b"a1 LOGIN {5}\n", True, SYNC),
            LiteralData(b"alice"),
            Line(b" x\n", False, None),
            end(b"a1 LOGIN {5}\nalice x\n"),
            Line(b"a2 NOOP\n", True, None),
            end(b"a2 NOOP\n"),
        ],
    ),
    (
        "quoted {5} not at the end of the line is no literal",
        b'a1 LOGIN "{5}" pw\r\n',
        [Line(b'a1 LOGIN "{5}" pw\r\n', True, None), end(b'a1 LOGIN "{5}" pw\r\n')],
    ),
    (
        "{abc} at the end of a line is no literal",
        b"a1 SELECT {abc}\r\n",
        [Line(b"a1 SELECT {abc}\r\n", True, None), end(b"a1 SELECT {abc}\r\n")],
    ),
    (
        "server response with a literal",
        b"* 1 FETCH (BODY[] {3}\r\nabc)\r\n",
        [
            Line(b"* 1 FETCH (BODY[] {3}\r\n", True, LiteralSpec(3, True, False)),
            LiteralData(b"abc"),
            Line(b")\r\n", False, None),
            end(b"* 1 FETCH (BODY[] {3}\r\nabc)\r\n"),
        ],
    ),
    (
        "empty line is a message of its own",
        b"\r\n",
        [Line(b"\r\n", True, None), end(b"\r\n")],
    ),
]


@pytest.mark.parametrize(
    ("stream", "expected"),
    [(stream, expected) for _, stream, expected in FRAMING_TABLE],
    ids=[name for name, _, _ in FRAMING_TABLE],
)
def test_framing_whole(stream: bytes, expected: list[Event]) -> None:
    framer = Framer()
    assert feed(framer, stream) == expected
    assert framer.buffered == 0
    assert not framer.in_message


@pytest.mark.parametrize(
    "stream",
    [stream for _, stream, _ in FRAMING_TABLE],
    ids=[name for name, _, _ in FRAMING_TABLE],
)
def test_framing_byte_by_byte_gives_the_same_lines(stream: bytes) -> None:
    whole = feed(Framer(), stream)
    events = feed(Framer(), *(stream[i : i + 1] for i in range(len(stream))))
    assert [e for e in events if not isinstance(e, LiteralData)] == [
        e for e in whole if not isinstance(e, LiteralData)
    ]
    literal = b"".join(e.data for e in events if isinstance(e, LiteralData))
    assert literal == b"".join(e.data for e in whole if isinstance(e, LiteralData))


def test_literal_bytes_never_become_lines() -> None:
    body = b"a1 LOGOUT\r\n"
    stream = b"a0 APPEND INBOX {%d}\r\n" % len(body) + body + b"\r\n"
    lines = [e.data for e in feed(Framer(), stream) if isinstance(e, Line)]
    assert b"a1 LOGOUT\r\n" not in lines
    assert lines == [b"a0 APPEND INBOX {11}\r\n", b"\r\n"]


def test_literal_data_streams_as_it_arrives() -> None:
    framer = Framer()
    events = feed(framer, b"a1 APPEND INBOX {11}\r\nhel", b"lo", b" worl", b"d\r\n")
    assert events == [
        Line(b"a1 APPEND INBOX {11}\r\n", True, LiteralSpec(11, True, False)),
        LiteralData(b"hel"),
        LiteralData(b"lo"),
        LiteralData(b" worl"),
        LiteralData(b"d"),
        Line(b"\r\n", False, None),
        end(b"a1 APPEND INBOX {11}\r\nhello world\r\n"),
    ]


ANNOUNCEMENTS: list[tuple[bytes, LiteralSpec | None]] = [
    (b"a1 X {5}\r\n", LiteralSpec(5, True, False)),
    (b"a1 X {5}\n", LiteralSpec(5, True, False)),
    (b"a1 X {5}", LiteralSpec(5, True, False)),
    (b"{5}\r\n", LiteralSpec(5, True, False)),
    (b"a1 X {05}\r\n", LiteralSpec(5, True, False)),
    (b"a1 X {5+}\r\n", LiteralSpec(5, False, False)),
    (b"a1 X {5-}\r\n", LiteralSpec(5, False, False)),
    (b"a1 X ~{5}\r\n", LiteralSpec(5, True, True)),
    (b"~{5+}\r\n", LiteralSpec(5, False, True)),
    (b"a1 X {%d}\r\n" % (10**20 - 1), LiteralSpec(10**20 - 1, True, False)),
    (b"a1 X {0}\r\n", LiteralSpec(0, True, False)),
    (b"a1 X\r\n", None),
    (b"a1 X {}\r\n", None),
    (b"a1 X {+}\r\n", None),
    (b"a1 X {abc}\r\n", None),
    (b"a1 X {-5}\r\n", None),
    (b"a1 X {5 }\r\n", None),
    (b"a1 X {5++}\r\n", None),
    (b"a1 X {5}}\r\n", None),
    (b"a1 X 5}\r\n", None),
    (b'a1 X "{5}" y\r\n', None),
    (b"a1 X {%d}\r\n" % (10**20), None),  # 21 digits
    (b"}\r\n", None),
    (b"\r\n", None),
]


@pytest.mark.parametrize(("line", "expected"), ANNOUNCEMENTS)
def test_parse_announcement(line: bytes, expected: LiteralSpec | None) -> None:
    assert parse_announcement(line) == expected


# -- MessageEnd.head ---------------------------------------------------------------------------


def test_head_holds_lines_and_literal_bytes_in_order() -> None:
    events = feed(Framer(), LOGIN_TWO_LITERALS)
    assert events[-1] == MessageEnd(LOGIN_TWO_LITERALS, truncated=False)


@pytest.mark.parametrize(
    ("max_head", "stream", "head", "truncated"),
    [
        (9, b"a1 NOOP\r\n", b"a1 NOOP\r\n", False),  # exactly max_head
        (8, b"a1 NOOP\r\n", b"a1 NOOP\r", True),
        (16, LOGIN_TWO_LITERALS, b"a1 LOGIN {5}\r\nal", True),  # cut inside a literal
        (19, LOGIN_TWO_LITERALS, b"a1 LOGIN {5}\r\nalice", True),  # at the literal's end
    ],
)
def test_head_truncated_at_max_head(
    max_head: int, stream: bytes, head: bytes, truncated: bool
) -> None:
    events = feed(Framer(max_head=max_head), stream)
    assert events[-1] == MessageEnd(head, truncated)
    # the events themselves are never truncated
    data = b"".join(e.data for e in events if isinstance(e, Line | LiteralData))
    assert data == stream


def test_no_heads_no_message_ends() -> None:
    """With max_head=0 (a direction that reads first lines only) there is no MessageEnd, and a
    Line without a literal still ends its message."""
    framer = Framer(max_head=0)
    events = feed(framer, b"a1 NOOP\r\n" + LOGIN_TWO_LITERALS)
    assert not any(isinstance(e, MessageEnd) for e in events)
    assert [e.first for e in events if isinstance(e, Line)] == [True, True, False, False]
    assert not framer.in_message


def test_head_resets_between_messages() -> None:
    framer = Framer(max_head=12)
    events = feed(framer, b"a1 SELECT INBOX\r\na2 NOOP\r\n")
    ends = [e for e in events if isinstance(e, MessageEnd)]
    assert ends == [MessageEnd(b"a1 SELECT IN", True), MessageEnd(b"a2 NOOP\r\n", False)]


# -- LineTooLong -------------------------------------------------------------------------------


def feed_until_error(framer: Framer, chunks: list[bytes]) -> int:
    """Feed chunks, draining after each, checking the buffer bound; return bytes fed."""
    fed = 0
    for chunk in chunks:
        assert framer.buffered <= framer.max_line
        framer.receive_data(chunk)
        fed += len(chunk)
        assert framer.events() == []
    return fed


def test_line_too_long_raised_without_buffering_more_than_the_bound() -> None:
    max_line, chunk = 64, 16
    framer = Framer(max_line=max_line)
    with pytest.raises(LineTooLong) as info:
        feed_until_error(framer, [b"x" * chunk] * (10 * max_line // chunk))
    assert info.value.limit == max_line
    # raised as soon as the partial line passed the bound, at most one chunk later
    assert max_line < framer.buffered <= max_line + chunk


def test_line_too_long_in_one_chunk() -> None:
    framer = Framer(max_line=64)
    framer.receive_data(b"x" * 640)
    with pytest.raises(LineTooLong, match="64"):
        framer.next_event()


@pytest.mark.parametrize(
    ("line", "ok"),
    [
        (b"a" * 62 + b"\r\n", True),  # exactly max_line
        (b"a" * 63 + b"\n", True),
        (b"a" * 63 + b"\r\n", False),
        (b"a" * 64 + b"\n", False),
    ],
)
def test_line_length_bound_includes_the_line_ending(line: bytes, ok: bool) -> None:
    framer = Framer(max_line=64)
    framer.receive_data(line)
    if ok:
        assert framer.events() == [Line(line, True, None), end(line)]
    else:
        with pytest.raises(LineTooLong):
            framer.events()


def test_line_too_long_split_across_chunks() -> None:
    framer = Framer(max_line=64)
    assert feed(framer, b"a" * 64) == []
    framer.receive_data(b"\r\n")
    with pytest.raises(LineTooLong):
        framer.events()


def test_max_line_does_not_limit_literals() -> None:
    body = b"y" * 1000
    stream = b"a1 APPEND INBOX {1000}\r\n" + body + b"\r\n"
    events = feed(Framer(max_line=64), stream)
    assert b"".join(e.data for e in events if isinstance(e, LiteralData)) == body


# -- LiteralTooLarge ---------------------------------------------------------------------------


def test_literal_too_large_resets_the_framer() -> None:
    framer = Framer(max_literal=10)
    framer.receive_data(b"a1 APPEND INBOX {11}\r\na2 NOOP\r\n")
    with pytest.raises(LiteralTooLarge) as info:
        framer.next_event()
    err = info.value
    assert err.spec == LiteralSpec(11, True, False)
    assert err.limit == 10
    assert err.line == b"a1 APPEND INBOX {11}\r\n"
    assert err.first is True
    assert framer.events() == [Line(b"a2 NOOP\r\n", True, None), end(b"a2 NOOP\r\n")]
    assert not framer.in_message


def test_literal_too_large_later_in_a_message() -> None:
    framer = Framer(max_literal=10)
    framer.receive_data(b"a1 LOGIN {3}\r\nbob {11+}\r\n")
    assert framer.next_event() == Line(b"a1 LOGIN {3}\r\n", True, LiteralSpec(3, True, False))
    assert framer.next_event() == LiteralData(b"bob")
    with pytest.raises(LiteralTooLarge) as info:
        framer.next_event()
    assert info.value.first is False
    assert info.value.spec == LiteralSpec(11, False, False)
    assert info.value.line == b" {11+}\r\n"
    # the framer starts over: the next bytes are a new message with a fresh head
    assert feed(framer, b"a2 NOOP\r\n") == [Line(b"a2 NOOP\r\n", True, None), end(b"a2 NOOP\r\n")]


def test_literal_of_exactly_max_literal_is_accepted() -> None:
    events = feed(Framer(max_literal=5), b"a1 APPEND INBOX {5}\r\nhello\r\n")
    assert LiteralData(b"hello") in events


def test_unbounded_literals_by_default() -> None:
    framer = Framer()
    framer.receive_data(b"* 1 FETCH (BODY[] {%d}\r\n" % (1 << 40))
    line = framer.next_event()
    assert isinstance(line, Line)
    assert line.literal == LiteralSpec(1 << 40, True, False)
    assert framer.in_literal


# -- end of stream -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stream",
    [
        pytest.param(b"a1 NOO", id="mid-line"),
        pytest.param(b"a1 APPEND INBOX {5}\r\nhel", id="mid-literal"),
        pytest.param(b"a1 APPEND INBOX {5}\r\n", id="before-literal"),
        pytest.param(b"a1 LOGIN {5}\r\nalice", id="after-literal-before-line"),
        pytest.param(b"a1 LOGIN {0}\r\n", id="after-empty-literal"),
        pytest.param(b"a1 NOOP\r\na2 NO", id="second-message-mid-line"),
    ],
)
def test_eof_inside_a_message_is_incomplete(stream: bytes) -> None:
    framer = Framer()
    framer.receive_data(stream)
    framer.events()
    framer.receive_data(b"")
    with pytest.raises(IncompleteMessage):
        framer.events()


@pytest.mark.parametrize(
    ("stream", "messages"),
    [(b"", 0), (b"a1 NOOP\r\n", 1), (LOGIN_TWO_LITERALS, 1), (b"a1 NOOP\r\na2 NOOP\r\n", 2)],
)
def test_eof_at_a_message_boundary_is_clean(stream: bytes, messages: int) -> None:
    framer = Framer()
    framer.receive_data(stream)
    framer.receive_data(b"")  # EOF before the events are pulled
    events = framer.events()
    assert sum(isinstance(e, MessageEnd) for e in events) == messages
    assert framer.next_event() is NEED_DATA
    assert not framer.in_message


# -- cancel_literal, buffered, in_message --------------------------------------------------------


def test_cancel_literal_after_a_refused_sync_literal() -> None:
    framer = Framer()
    events = feed(framer, b"a1 APPEND INBOX {100}\r\n")
    assert events == [Line(b"a1 APPEND INBOX {100}\r\n", True, LiteralSpec(100, True, False))]
    assert framer.in_literal
    assert framer.in_message
    framer.cancel_literal()  # the server answered "a1 NO" instead of "+"
    assert not framer.in_literal
    assert not framer.in_message
    assert feed(framer, b"a2 NOOP\r\n") == [Line(b"a2 NOOP\r\n", True, None), end(b"a2 NOOP\r\n")]


def test_cancel_literal_keeps_bytes_already_received() -> None:
    framer = Framer()
    framer.receive_data(b"a1 APPEND INBOX {100}\r\na2 NOOP\r\n")
    framer.next_event()
    framer.cancel_literal()
    assert framer.events() == [Line(b"a2 NOOP\r\n", True, None), end(b"a2 NOOP\r\n")]


def test_buffered_counts_bytes_not_yet_handed_out() -> None:
    framer = Framer()
    assert framer.buffered == 0
    framer.receive_data(b"a1 NOOP\r\na2 NO")
    assert framer.buffered == 14
    assert isinstance(framer.next_event(), Line)
    assert framer.buffered == 5
    assert isinstance(framer.next_event(), MessageEnd)
    assert framer.next_event() is NEED_DATA
    assert framer.buffered == 5  # the partial line stays
    more = b"OP\r\na3 APPEND INBOX {6}\r\nabc"
    framer.receive_data(more)
    assert framer.buffered == 5 + len(more)
    assert [type(e) for e in framer.events()] == [Line, MessageEnd, Line, LiteralData]
    assert framer.buffered == 0
    assert framer.in_literal


def test_in_message_flags() -> None:
    framer = Framer()
    assert not framer.in_message
    framer.receive_data(b"a1 NO")
    assert framer.in_message  # a partial line is the start of a message
    framer.receive_data(b"OP\r\n")
    assert isinstance(framer.next_event(), Line)
    assert framer.in_message  # until its MessageEnd
    assert isinstance(framer.next_event(), MessageEnd)
    assert not framer.in_message
    assert framer.next_event() is NEED_DATA
