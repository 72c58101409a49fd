"""A text that ``may_quote`` rules out holds no quoted block: the same first block as the full
search on generated text and on every SpamAssassin message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier import quotes
from tests.spamassassin import spamassassin_mail


def _full(text: str) -> int | None:
    match = quotes._BLOCK_START.search(text)
    return None if match is None else match.start()


@pytest.mark.parametrize(
    "text",
    [
        "hi\n-----Original Message-----\nFrom: a@b.c\n",
        "hi\n> BEGIN FORWARDED MESSAGE:\n",
        "ok\nFROM: Drew\nSENT: Monday\n",
        "ok\n from: drew\n date: today\n",
        "ok\nDrew Fossum\n01/15/2001 10:31 AM\n",
        "---- Ursprüngliche Nachricht ----",
    ],
)
def test_quoted_blocks_pass(text: str) -> None:
    assert quotes.may_quote(text)
    assert _full(text) is not None
    assert quotes._first_block(text) == _full(text)


def test_a_short_note_is_ruled_out() -> None:
    assert not quotes.may_quote("Shall we have lunch some day next week? Option 4.\n")
    assert quotes._first_block("Shall we have lunch?\n") is None


_PIECES = st.sampled_from(
    ["From", "FROM", "fRoM", ":", " ", "\n", "\t", ">", "-", "--", "Sent", "DATE", "date",
     "Original Message", "Forwarded message", "begin forwarded message", "Message d'origine",
     "01", "1", "/", "15", "2001", "10", "31", "am", "PM", "x", "é", "M", "e", "E", "m"]
)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.lists(_PIECES, max_size=25))
def test_generated_text(pieces: list[str]) -> None:
    text = "".join(pieces)
    assert quotes._first_block(text) == _full(text)
    if not quotes.may_quote(text):
        assert _full(text) is None


def test_every_spamassassin_message() -> None:
    ruled_out = 0
    for name, mail in spamassassin_mail():
        body = mail.body[: quotes.QUOTE_SCAN_CHARS]
        assert quotes._first_block(body) == _full(body), name
        ruled_out += not quotes.may_quote(body)
    assert ruled_out > 0


_LINES = ["Hi", ">", "> quoted", " >x", "--", "From: a", "Sent: b", "\n", "\r\n", "\r",
          "\x0c", "\u2028", "ok", " ", "01/02/2003 10:30", "text"]  # fmt: skip
_BODY = st.lists(st.sampled_from(_LINES), max_size=20).map("".join)


def _own_text_in_full(body: str, limit: int = quotes.QUOTE_SCAN_CHARS) -> str:
    text = body[:limit]
    start = _full(text)
    if start is not None:
        text = text[:start]
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(">"))


@settings(max_examples=1000, deadline=None)
@given(_BODY, st.sampled_from([quotes.QUOTE_SCAN_CHARS, 5, 1500]))
def test_own_text_as_in_full(body: str, limit: int) -> None:
    quotes.own_text.cache_clear()
    assert quotes.own_text(body, limit) == _own_text_in_full(body, limit)
    assert quotes.own_text(body, limit) == _own_text_in_full(body, limit)  # remembered
