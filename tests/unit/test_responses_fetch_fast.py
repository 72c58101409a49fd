"""The fast reading of common FETCH shapes gives what the tokenizer gives, for any input.

parse_fetch reads ``* n FETCH (UID x FLAGS (...) RFC822.SIZE n BODY[...] {n}...)`` with regular
expressions and slices, and hands everything else to the tokenizer; these properties hold it to
the tokenizer's reading (``_fetch_tokenized``) on the shapes the server sends, on their
variations (order, case, quoted strings, NIL, partial origins, odd flags) and on mangled bytes.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.imap.responses import Fetched, _fetch_fast, _fetch_tokenized, parse_fetch

_PLAIN_FLAGS = [b"\\Seen", b"\\Recent", b"$Triaged", b"$Later", b"\\Flagged", b"\\*"]
_ODD_FLAGS = [b"a]b", b"x[y", b"caf\xc3\xa9", b"\xff", b"tab\there", b"%", b"~", b'q"', b"{3}",
              b"(", b"NIL"]  # fmt: skip
# Mostly what the server sends, now and then something else: both readings are exercised.
_FLAG_CHARS = st.sampled_from(_PLAIN_FLAGS * 4 + _ODD_FLAGS)
_BODY = st.binary(max_size=60) | st.sampled_from(
    [b") BODY[TEXT] {3}\r\nabc", b"* 2 FETCH (UID 9)\r\n", b"\r\n", b"", b"}\r\n"]
)


@st.composite
def _item(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["uid", "flags", "size", "section"] * 5 + ["date", "odd"]))
    if kind == "uid":
        name = draw(st.sampled_from([b"UID"] * 8 + [b"uid", b"Uid"]))
        value = st.sampled_from([b"1", b"42", b"007", b"99999999999"] * 3 + [b"x", b"4x"])
        return name + b" " + draw(value)
    if kind == "size":
        value = st.sampled_from([b"0", b"700", b"65536"] * 3 + [b"12a", b"NIL"])
        return b"RFC822.SIZE " + draw(value)
    if kind == "flags":
        flags = draw(st.lists(_FLAG_CHARS, max_size=4))
        gap = draw(st.sampled_from([b" "] * 5 + [b"  "]))
        return b"FLAGS (" + gap.join(flags) + b")"
    if kind == "date":
        return b'INTERNALDATE "07-Dec-2026 10:00:00 +0000"'
    if kind == "odd":
        return draw(st.sampled_from([b"NIL", b'"x"', b"MODSEQ (12)", b"BODY[HEADER] NIL"]))
    section = draw(
        st.sampled_from([b"BODY[HEADER]", b"BODY[TEXT]", b"BODY[]", b"BODY[TEXT]<0>",
                         b"BODY[]<10>"] * 2 + [b"body[text]", b"BODY[HEADER.FIELDS (FROM)]"])
    )  # fmt: skip
    body = draw(_BODY)
    literal = draw(st.sampled_from(["sync"] * 10 + ["plus", "binary", "quoted", "long", "short"]))
    if literal == "quoted":
        return section + b' "' + body.replace(b'"', b"").replace(b"\\", b"") + b'"'
    size = {"long": len(body) + 5, "short": max(len(body) - 1, 0)}.get(literal, len(body))
    spec = {"plus": b"{%d+}", "binary": b"~{%d}"}.get(literal, b"{%d}") % size
    return section + b" " + spec + b"\r\n" + body


@st.composite
def _fetch(draw: st.DrawFn) -> bytes:
    number = draw(st.sampled_from([b"1", b"12", b"0003", b"1" * 30]))
    items = b" ".join(draw(st.lists(_item(), max_size=6)))
    end = draw(st.sampled_from([b")\r\n"] * 6 + [b")\n", b")", b"", b") x\r\n", b"\r\n"]))
    heads = [b"* %s FETCH ("] * 8 + [b"* %s fetch (", b"* %s FETCH(", b"* %s FETCH ( "]
    head = draw(st.sampled_from(heads))
    return head % number + items + end


@st.composite
def _server_fetch(draw: st.DrawFn) -> bytes:
    """A FETCH response as the server writes the shapes triage asks for, any order."""
    items = []
    for kind in draw(st.lists(st.sampled_from(["uid", "flags", "size", "section"]), max_size=6)):
        if kind == "uid":
            items.append(b"UID %d" % draw(st.integers(0, 2**40)))
        elif kind == "size":
            items.append(b"RFC822.SIZE %d" % draw(st.integers(0, 2**31)))
        elif kind == "flags":
            items.append(b"FLAGS (" + b" ".join(draw(st.lists(_FLAG_CHARS, max_size=4))) + b")")
        else:
            section = draw(st.sampled_from([b"BODY[HEADER]", b"BODY[TEXT]<0>", b"BODY[]"]))
            body = draw(st.binary(max_size=80))
            items.append(section + b" {%d}\r\n" % len(body) + body)
    return b"* %d FETCH (" % draw(st.integers(1, 10**6)) + b" ".join(items) + b")\r\n"


@settings(max_examples=1000, deadline=None)
@given(_server_fetch() | _fetch())
def test_the_fast_reading_is_the_tokenizer_s(message: bytes) -> None:
    assert parse_fetch([message]) == _fetch_tokenized([message])


@settings(max_examples=1000, deadline=None)
@given(_server_fetch() | _fetch(), st.data())
def test_mangled_responses_read_the_same(message: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(0, max(len(message) - 1, 0)))
    how = data.draw(st.sampled_from(["cut", "flip", "insert"]))
    if how == "cut":
        message = message[:at]
    elif how == "flip" and message:
        message = message[:at] + bytes([data.draw(st.integers(0, 255))]) + message[at + 1 :]
    else:
        message = message[:at] + data.draw(st.binary(min_size=1, max_size=3)) + message[at:]
    assert parse_fetch([message]) == _fetch_tokenized([message])


def test_the_server_s_shapes_take_the_fast_path() -> None:
    header, text = b"From: a@example.com\r\n\r\n", b"hello"
    body = (
        b"* 3 FETCH (UID 17 FLAGS (\\Recent $Later) RFC822.SIZE 700 BODY[HEADER] {%d}\r\n%s"
        b" BODY[TEXT]<0> {%d}\r\n%s)\r\n" % (len(header), header, len(text), text)
    )
    flags = b"* 4 FETCH (UID 18 FLAGS ())\r\n"
    assert _fetch_fast(body) == Fetched(17, frozenset({"\\Recent", "$Later"}), 700, header, text)
    assert _fetch_fast(flags) == Fetched(18, frozenset())
    assert parse_fetch([body, flags]) == _fetch_tokenized([body, flags])
