"""The IMAP layer's one mailbox-name codec, its table of names and its self-rendering refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsproxy.imap.errors import Bad, No
from commsproxy.imap.mailbox_names import canonical, decode_name, encode_name
from commsproxy.imap.names import HELD_AS, HOLD_KEYWORD, LABEL_KEYWORDS, URGENT


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("Entwürfe", "Entw&APw-rfe"),
        ("Tom & Jerry", "Tom &- Jerry"),
        ("日本語", "&ZeVnLIqe-"),
        ("Later/Bulk", "Later/Bulk"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),  # RFC 3501 5.1.3
    ],
)
def test_encode_and_decode_agree_with_rfc_spellings(text: str, wire: str) -> None:
    assert encode_name(text) == wire
    assert decode_name(wire) == text
    assert decode_name(wire.encode()) == text


@given(st.text(min_size=0, max_size=40))
def test_any_name_survives_the_round_trip(text: str) -> None:
    encoded = encode_name(text)
    assert encoded.isascii()
    assert decode_name(encoded) == text


@pytest.mark.parametrize("odd", ["&Jjo", "&!!!-", "a&"])
def test_a_broken_shift_is_shown_not_refused(odd: str) -> None:
    assert decode_name(odd)  # lenient: a server's odd name still reads as something


def test_inbox_is_spelled_one_way_and_only_inbox() -> None:
    assert canonical("inbox") == "INBOX"
    assert canonical("Inbox/Sub") == "Inbox/Sub"


def test_hold_keywords_map_both_ways_and_urgent_is_never_held() -> None:
    assert {HELD_AS[k] for k in HOLD_KEYWORD.values()} == set(HOLD_KEYWORD)
    assert URGENT not in HOLD_KEYWORD
    for label, keyword in HOLD_KEYWORD.items():
        assert keyword in LABEL_KEYWORDS[label]


def test_refusals_render_their_own_tagged_reply() -> None:
    assert Bad("LOGIN expects a user name").reply("a1") == b"a1 BAD LOGIN expects a user name\r\n"
    refused = No("no [[login]] for this user", code="AUTHENTICATIONFAILED")
    assert refused.reply("a2") == b"a2 NO [AUTHENTICATIONFAILED] no [[login]] for this user\r\n"
    assert Bad("not an IMAP command").reply(None) == b"* BAD not an IMAP command\r\n"
