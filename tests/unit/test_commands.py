"""Spelling commands: chunks around literals, astrings, APPEND dates; reading completions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from commsproxy.imap.commands import (
    Chunk,
    Literal,
    astring,
    command_chunks,
    expand_uid_set,
    internal_date,
)
from commsproxy.imap.responses import parse_capabilities, read_completion, untagged_name


def test_a_command_without_literals_is_one_chunk() -> None:
    assert command_chunks("t1", "UID SEARCH", ["ALL"]) == [Chunk(b"t1 UID SEARCH ALL\r\n", False)]
    assert command_chunks("t2", "NOOP") == [Chunk(b"t2 NOOP\r\n", False)]


def test_a_synchronizing_literal_splits_the_command() -> None:
    chunks = command_chunks("t1", "LOGIN", ['"ann"', Literal(b"p\r\nw")])
    assert chunks == [Chunk(b't1 LOGIN "ann" {4}\r\n', True), Chunk(b"p\r\nw\r\n", False)]


def test_literal_plus_and_literal_minus() -> None:
    big = Literal(b"x" * 5000)
    plus = command_chunks("t1", "APPEND", ['"A"', big], literal_plus=True)
    assert plus == [Chunk(b't1 APPEND "A" {5000+}\r\n' + big.data + b"\r\n", False)]
    minus = command_chunks("t1", "APPEND", ['"A"', Literal(b"ab"), big], literal_minus=True)
    assert [chunk.wait for chunk in minus] == [True, False]  # only the big one waits
    assert minus[0].data == b't1 APPEND "A" {2+}\r\nab {5000}\r\n'


@pytest.mark.parametrize(
    ("value", "spelled"),
    [
        ("ann", '"ann"'),
        ('pa"ss\\', '"pa\\"ss\\\\"'),
        ("pässwort", Literal("pässwort".encode())),
        ("line\r\nbreak", Literal(b"line\r\nbreak")),
    ],
)
def test_astring(value: str, spelled: str | Literal) -> None:
    assert astring(value) == spelled


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2020, 1, 2, 12, 0, 5, tzinfo=UTC), '" 2-Jan-2020 12:00:05 +0000"'),
        (
            datetime(2026, 12, 24, 8, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            '"24-Dec-2026 08:30:00 -0530"',
        ),
    ],
)
def test_internal_date(moment: datetime, text: str) -> None:
    assert internal_date(moment) == text


def test_expand_uid_set() -> None:
    assert expand_uid_set("3:5,9,12:11") == [3, 4, 5, 9, 11, 12]


@pytest.mark.parametrize(
    ("line", "status", "code", "text"),
    [
        (b"t1 OK done", "OK", None, "done"),
        (b"t1 NO [TRYCREATE] No such mailbox", "NO", "TRYCREATE", "No such mailbox"),
        (b"t1 no [copyuid 7 1 2] moved", "NO", "COPYUID", "moved"),
        (b"t1 BAD", "BAD", None, ""),
    ],
)
def test_read_completion(line: bytes, status: str, code: str | None, text: str) -> None:
    reply = read_completion(line, [b"* 1 EXISTS\r\n"])
    assert (reply.tag, reply.status, reply.code, reply.text) == ("t1", status, code, text)
    assert reply.messages == (b"* 1 EXISTS\r\n", line)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (b"* 12 FETCH (UID 1)\r\n", (12, "FETCH")),
        (b"* ok [UIDNEXT 4] next\r\n", (None, "OK")),
        (b"* SEARCH\r\n", (None, "SEARCH")),
        (b"t1 OK done\r\n", None),
        (b"+ go ahead\r\n", None),
    ],
)
def test_untagged_name(message: bytes, kind: tuple[int | None, str] | None) -> None:
    assert untagged_name(message) == kind


@pytest.mark.parametrize(
    ("message", "capabilities"),
    [
        (b"* CAPABILITY IMAP4rev1 idle MOVE\r\n", {"IMAP4REV1", "IDLE", "MOVE"}),
        (b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n", {"IMAP4REV1", "AUTH=PLAIN"}),
        (b"t3 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n", {"IMAP4REV1", "UIDPLUS"}),
        (b"* OK ready\r\n", None),
        (b"* OK [UIDNEXT 4] next\r\n", None),
    ],
)
def test_capabilities(message: bytes, capabilities: set[str] | None) -> None:
    found = parse_capabilities(message)
    assert (set(found) if found is not None else None) == capabilities
