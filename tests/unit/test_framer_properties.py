"""Properties of the IMAP framer over generated message streams split at arbitrary points."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.imap.framer import (
    Event,
    Framer,
    Line,
    LineTooLong,
    LiteralData,
    LiteralSpec,
    MessageEnd,
)

FAST = settings(max_examples=200, deadline=None)
MAX_HEAD = 64


@dataclass(frozen=True)
class Message:
    """One generated message: its lines (with the literal each announces) and literal bodies."""

    lines: tuple[tuple[bytes, LiteralSpec | None], ...]
    literals: tuple[bytes, ...]

    @property
    def data(self) -> bytes:
        out = b""
        for i, (line, _) in enumerate(self.lines):
            out += line
            if i < len(self.literals):
                out += self.literals[i]
        return out


ATOM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:*."
atoms = st.text(ATOM_CHARS, min_size=1, max_size=8)
eols = st.sampled_from([b"\r\n", b"\n"])
kinds = st.sampled_from(["{n}", "{n+}", "~{n}", "~{n+}"])
# Literal bodies: random bytes plus the pieces most likely to confuse a framer.
tricky = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b"{", b"}", b"{5}\r\n", b"~{3+}\n", b"a1 LOGOUT\r\n", b"* BYE\r\n"]
)
literal_bodies = st.lists(st.one_of(st.binary(max_size=12), tricky), max_size=6).map(b"".join)


def announcement(kind: str, size: int) -> bytes:
    return kind.replace("n", str(size)).encode()


def spec_of(kind: str, size: int) -> LiteralSpec:
    return LiteralSpec(size, synchronizing="+" not in kind, binary=kind.startswith("~"))


@st.composite
def messages(draw: st.DrawFn) -> Message:
    tag = draw(st.sampled_from(["a1", "A002", "*", "x.9"]))
    words = draw(st.lists(atoms, min_size=1, max_size=4))
    bodies = draw(st.lists(literal_bodies, max_size=3))
    lines: list[tuple[bytes, LiteralSpec | None]] = []
    text = " ".join([tag, *words]).encode()
    for i in range(len(bodies) + 1):
        if i < len(bodies):
            kind = draw(kinds)
            sep = draw(st.sampled_from([b" ", b""]))
            spec: LiteralSpec | None = spec_of(kind, len(bodies[i]))
            text += sep + announcement(kind, len(bodies[i]))
        else:
            spec = None
        lines.append((text + draw(eols), spec))
        # the line after a literal: empty, or more arguments
        more = draw(st.lists(atoms, max_size=2))
        text = b"".join(b" " + word.encode() for word in more)
    return Message(tuple(lines), tuple(bodies))


streams = st.lists(messages(), min_size=1, max_size=5)


def expected_events(stream: list[Message]) -> list[Event]:
    out: list[Event] = []
    for message in stream:
        for i, (line, spec) in enumerate(message.lines):
            out.append(Line(line, i == 0, spec))
            if i < len(message.literals) and message.literals[i]:
                out.append(LiteralData(message.literals[i]))
        data = message.data
        out.append(MessageEnd(data[:MAX_HEAD], len(data) > MAX_HEAD))
    return out


def coalesce(events: list[Event]) -> list[Event]:
    """Merge adjacent LiteralData: literal bytes are handed on in whatever chunks arrived."""
    out: list[Event] = []
    for event in events:
        if isinstance(event, LiteralData) and out and isinstance(out[-1], LiteralData):
            out[-1] = LiteralData(out[-1].data + event.data)
        else:
            out.append(event)
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def run(framer: Framer, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        framer.receive_data(chunk)
        events += framer.events()
    framer.receive_data(b"")
    events += framer.events()  # EOF at a message boundary: no IncompleteMessage
    assert not framer.in_message
    return events


@FAST
@given(stream=streams, data=st.data())
def test_any_split_frames_like_the_whole_stream(stream: list[Message], data: st.DataObject) -> None:
    """Properties 1-3 on one generated stream (generation is the slow part, so it is shared)."""
    raw = b"".join(message.data for message in stream)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20), label="cuts")
    whole = run(Framer(max_head=MAX_HEAD), [raw])
    chunked = run(Framer(max_head=MAX_HEAD), split(raw, cuts))

    # (1) any split yields the same events as the whole stream (literal chunks merged)
    assert whole == expected_events(stream)
    assert coalesce(chunked) == whole

    # (2) the data of Line and LiteralData events is the input, byte for byte
    assert b"".join(e.data for e in chunked if isinstance(e, Line | LiteralData)) == raw

    # (3) literal bytes never become a Line: lines, first flags and message count as generated
    lines = [e for e in chunked if isinstance(e, Line)]
    assert lines == [
        Line(line, i == 0, spec)
        for message in stream
        for i, (line, spec) in enumerate(message.lines)
    ]
    assert sum(line.first for line in lines) == len(stream)
    assert sum(isinstance(e, MessageEnd) for e in chunked) == len(stream)


@settings(max_examples=100, deadline=None)
@given(stream=streams, data=st.data())
def test_memory_bound_for_lines(stream: list[Message], data: st.DataObject) -> None:
    raw = b"".join(message.data for message in stream)
    max_line = max(len(line) for message in stream for line, _ in message.lines)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=20), label="cuts")
    framer = Framer(max_line=max_line, max_head=MAX_HEAD)
    for chunk in split(raw, cuts):
        framer.receive_data(chunk)
        for event in framer.events():
            if isinstance(event, Line):
                assert len(event.data) <= max_line
            elif isinstance(event, MessageEnd):
                assert len(event.head) <= MAX_HEAD
        # what stays buffered after draining is at most one partial line
        assert framer.buffered <= max_line
        if framer.in_literal:
            assert framer.buffered == 0


@FAST
@given(
    max_line=st.integers(1, 200),
    extra=st.integers(1, 500),
    chunk=st.integers(1, 64),
    newline=st.booleans(),
)
def test_overlong_line_is_refused_early(
    max_line: int, extra: int, chunk: int, newline: bool
) -> None:
    raw = b"x" * (max_line + extra) + (b"\r\n" if newline else b"")
    framer = Framer(max_line=max_line)

    def feed_all() -> None:
        for piece in split(raw, list(range(chunk, len(raw), chunk))):
            assert framer.buffered <= max_line
            framer.receive_data(piece)
            framer.events()

    with pytest.raises(LineTooLong):
        feed_all()
    assert framer.buffered <= max_line + chunk
