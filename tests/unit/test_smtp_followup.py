"""The follow-up address (``2d@followup.invalid``) and its removal from a message's header."""

from __future__ import annotations

import pytest

from commsproxy.proxy.smtp.followup_address import (
    is_followup_address,
    read_followup_address,
    refusal,
)
from commsproxy.proxy.smtp.header_rewrite import RewrittenMessage, read_head, without_followup
from commsproxy.proxy.smtp.spool import InFlight, Spool


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("2d@followup.invalid", "2d"),
        ("<4H@FOLLOWUP.INVALID>", "4h"),
        ("monday@followup.invalid", "monday"),
        ("tomorrow@followup.invalid", "tomorrow"),
        ('"fri 14:00"@followup.invalid', "fri 14:00"),
        ("next-week@followup.invalid", "next week"),
        ("FRI_14:00@followup.invalid", "fri 14:00"),
        ("never@followup.invalid", "never"),
        ("None@followup.invalid", "none"),
        ("1w@followup.invalid.", "1w"),
    ],
)
def test_a_follow_up_time_is_read(address: str, local: str) -> None:
    found = read_followup_address(address)
    assert found is not None
    assert (found.local, found.error) == (local, None)


@pytest.mark.parametrize("address", ["soon@followup.invalid", "0d@followup.invalid", "@x"])
def test_a_malformed_follow_up_address_is_refused_with_what_is_expected(address: str) -> None:
    found = read_followup_address(address)
    if address == "@x":
        assert found is None
        return
    assert found is not None
    assert found.error is not None
    reply = refusal(found)
    assert reply.startswith("553 5.1.3 ")
    assert "expected e.g. 2d@followup.invalid" in reply
    assert "\r" not in reply
    assert "\n" not in reply


def test_ordinary_addresses_are_not_follow_up_addresses() -> None:
    for address in ("bob@example.com", "followup.invalid@example.com", "a@invalid"):
        assert read_followup_address(address) is None
        assert not is_followup_address(address)


def _spool(data: bytes, memory: int = 1 << 20) -> Spool:
    spool = Spool(InFlight(1 << 30), memory=memory)
    for start in range(0, len(data), 7):  # written in small pieces, as DATA comes
        assert spool.write(data[start : start + 7])
    return spool


HEAD = (
    b"From: Me <me@team.example>\r\n"
    b"To: Customer <ceo@acme.example>,\r\n"
    b" 2d@followup.invalid\r\n"
    b'Cc: "Doe, Jane" <jane@acme.example>, 4h@FOLLOWUP.invalid (me)\r\n'
    b"Bcc: 2d@followup.invalid\r\n"
    b"Subject: about 2d@followup.invalid\r\n"
    b"\r\n"
)
BODY = b"Write to 2d@followup.invalid.\r\n" + b"x" * 70 + b"\r\n"


def test_the_follow_up_address_leaves_to_cc_and_bcc_and_nothing_else_changes() -> None:
    rewritten = without_followup(HEAD)
    assert rewritten == (
        b"From: Me <me@team.example>\r\n"
        b"To: Customer <ceo@acme.example>\r\n"
        b'Cc: "Doe, Jane" <jane@acme.example>\r\n'
        b"Subject: about 2d@followup.invalid\r\n"
        b"\r\n"
    )


def test_a_header_without_the_address_is_left_alone() -> None:
    head = b"To: a@b.example, c@d.example\r\nSubject: x\r\n\r\n"
    assert without_followup(head) is None


def test_a_group_keeps_its_end_and_8bit_bytes_stay() -> None:
    head = b"To: Team: a@b.example, 2d@followup.invalid;\r\nSubject: caf\xe9\r\n\r\n"
    assert without_followup(head) == b"To: Team: a@b.example;\r\nSubject: caf\xe9\r\n\r\n"


def test_a_long_list_is_folded() -> None:
    people = ", ".join(f"person{i}@acme.example" for i in range(30))
    head = f"To: {people}, 2d@followup.invalid\r\n\r\n".encode()
    rewritten = without_followup(head)
    assert rewritten is not None
    lines = rewritten.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert rewritten.replace(b"\r\n ", b" ") == f"To: {people}\r\n\r\n".encode()


@pytest.mark.parametrize("memory", [1 << 20, 16])  # in memory, and spooled to a file
def test_the_rewritten_message_streams_the_body_unchanged(memory: int) -> None:
    with _spool(HEAD + BODY, memory) as spool:
        assert spool.on_disk == (memory == 16)
        head = read_head(spool)
        assert head == HEAD
        new_head = without_followup(head)
        assert new_head is not None
        message = RewrittenMessage(spool, len(head), new_head)
        for size in (1, 5, 64 << 10):
            assert b"".join(message.blocks(size)) == new_head + BODY
        assert message.read_all() == new_head + BODY
        assert message.size == len(new_head + BODY)


def test_read_head_without_a_body_or_without_a_header() -> None:
    with _spool(b"Subject: x\r\n") as spool:
        assert read_head(spool) == b"Subject: x\r\n"
    with _spool(b"\r\nbody\r\n") as spool:
        assert read_head(spool) == b"\r\n"
    with _spool(b"Subject: " + b"x" * 100 + b"\r\n") as spool:
        assert read_head(spool, limit=50) == b""
