"""The IMAP answers filing reads: COPYUID, APPENDUID, STATUS, NAMESPACE, and Message-ID headers.

Inputs are server transcripts cut into whole messages by the framer, the tagged completion last
(they were aioimaplib's line lists: untagged lines without ``* ``, the completion text last).
"""

from __future__ import annotations

import pytest

from commsproxy.classifier.mail import parse_mail
from commsproxy.imap.responses import (
    parse_appenduid,
    parse_copyuid,
    parse_namespace,
    parse_status,
)
from commsproxy.triage.filer import message_id_of

from .framed import framed

# -- parse_copyuid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "mapping"),
    [
        # RFC 4315's own example.
        (
            b"a1 OK [COPYUID 38505 304,319:320 3956:3958] Done\r\n",
            {304: 3956, 319: 3957, 320: 3958},
        ),
        (
            b"a1 OK [COPYUID 7 3:5,9 20:23] Copy completed (0.002 + 0.000 secs).\r\n",
            {3: 20, 4: 21, 5: 22, 9: 23},
        ),
        (b"a1 OK [COPYUID 7 12 40] Copy completed.\r\n", {12: 40}),
        # Single UIDs pair up in the order written.
        (b"a1 OK [COPYUID 7 9,3 40,41] Copy completed.\r\n", {9: 40, 3: 41}),
        # Both ranges written downwards: the same sets, the same pairing.
        (b"a1 OK [COPYUID 7 5:3 12:10] Copy completed.\r\n", {3: 10, 4: 11, 5: 12}),
        (b"a1 ok [copyuid 7 1:2 5:6] copy completed\r\n", {1: 5, 2: 6}),
        # MOVE: the code comes on an untagged OK before the expunges and the completion.
        (
            b"* OK [COPYUID 1700000000 8:9 101:102] Moved UIDs.\r\n"
            b"* 1 EXPUNGE\r\n"
            b"* 1 EXPUNGE\r\n"
            b"a1 OK Move completed (0.003 + 0.000 secs).\r\n",
            {8: 101, 9: 102},
        ),
    ],
)
def test_copyuid(wire: bytes, mapping: dict[int, int]) -> None:
    assert parse_copyuid(framed(wire)) == mapping


@pytest.mark.parametrize(
    "wire",
    [
        b"a1 OK Copy completed (0.001 + 0.000 secs).\r\n",
        b"a1 OK [UIDNOTSTICKY] Copy completed.\r\n",  # the server cannot say which UIDs it gave
        b"a1 OK [COPYUID 7] Copy completed.\r\n",
        b"",
    ],
)
def test_copyuid_without_the_code(wire: bytes) -> None:
    """No mapping rather than an error: without UIDPLUS the server gives none."""
    assert parse_copyuid(framed(wire)) == {}


@pytest.mark.parametrize(("source", "destination"), [(b"5:3", b"10:12"), (b"3:5", b"12:10")])
def test_copyuid_range_direction_does_not_matter(source: bytes, destination: bytes) -> None:
    """A range is a set, whichever way it is written: 3:5 and 5:3 are both 3, 4, 5."""
    wire = b"a1 OK [COPYUID 7 " + source + b" " + destination + b"] Copy completed.\r\n"
    assert parse_copyuid(framed(wire)) == {3: 10, 4: 11, 5: 12}


# -- parse_appenduid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "uid"),
    [
        (b"a1 OK [APPENDUID 38505 3955] APPEND completed\r\n", 3955),
        (b"a1 OK [appenduid 1 7] Append completed (0.004 + 0.000 secs).\r\n", 7),
        (b"* 1 EXISTS\r\na1 OK [APPENDUID 1700000000 42] Append completed.\r\n", 42),
        (b"a1 OK Append completed.\r\n", None),
        (b"a1 OK [UIDNOTSTICKY] Append completed.\r\n", None),
        (b"", None),
    ],
)
def test_appenduid(wire: bytes, uid: int | None) -> None:
    assert parse_appenduid(framed(wire)) == uid


# -- parse_status --------------------------------------------------------------------------------

STATUSED = b"a1 OK Status completed.\r\n"


@pytest.mark.parametrize(
    ("wire", "items"),
    [
        (
            b'* STATUS "Accounts/Acme" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 1700000000)\r\n'
            b"a1 OK Status completed (0.001 + 0.000 secs).\r\n",
            {"MESSAGES": 3, "UIDNEXT": 9, "UIDVALIDITY": 1700000000},
        ),
        (
            b"* STATUS INBOX (messages 0 unseen 2 recent 1)\r\n" + STATUSED,
            {"MESSAGES": 0, "UNSEEN": 2, "RECENT": 1},
        ),
        # A name with parentheses and item names in it: only the item list counts.
        (b'* STATUS "Unseen 4 (MESSAGES 7)" (UIDNEXT 5)\r\n' + STATUSED, {"UIDNEXT": 5}),
        # Items the filer does not read are left out.
        (
            b"* STATUS Acme (MESSAGES 1 HIGHESTMODSEQ 99 SIZE 1234)\r\n" + STATUSED,
            {"MESSAGES": 1},
        ),
    ],
)
def test_status(wire: bytes, items: dict[str, int]) -> None:
    assert parse_status(framed(wire)) == items


@pytest.mark.parametrize(
    "wire",
    [
        b"* STATUS Acme ()\r\n" + STATUSED,
        b"a1 OK Status completed (MESSAGES 5)\r\n",  # the completion text is never an answer
        b"a1 NO Mailbox doesn't exist: Acme\r\n",
        b"",
    ],
)
def test_status_without_items(wire: bytes) -> None:
    assert parse_status(framed(wire)) == {}


# -- parse_namespace -----------------------------------------------------------------------------

DONE = b"a1 OK Namespace completed (0.001 + 0.000 secs).\r\n"


@pytest.mark.parametrize(
    ("wire", "public"),
    [
        (b'* NAMESPACE (("" "/")) NIL (("Public/" "/"))\r\n' + DONE, ("Public/", "/")),
        # (aioimaplib's form without the word NAMESPACE does not exist on the wire)
        (b'* namespace (("" "/")) NIL (("Public/" "/"))\r\n' + DONE, ("Public/", "/")),
        # Several shared namespaces: the first one.
        (
            b'* NAMESPACE (("" "/")) (("Users/" "/")) (("Public/" "/")("Shared/" "/"))\r\n' + DONE,
            ("Public/", "/"),
        ),
        # A "." separator, a modified UTF-7 prefix and extension data after the pair.
        (
            b'* NAMESPACE (("INBOX." ".")) NIL (("&AMk-quipe." "." "X-PARAM" ("a")))\r\n' + DONE,
            ("\u00c9quipe.", "."),
        ),
        (b'* NAMESPACE NIL NIL (("#shared/" "/"))\r\n' + DONE, ("#shared/", "/")),
        (b'* NAMESPACE (("" "/")) NIL (("Public" NIL))\r\n' + DONE, ("Public", None)),
    ],
)
def test_namespace_with_a_public_namespace(
    wire: bytes, public: tuple[str | None, str | None]
) -> None:
    assert parse_namespace(framed(wire)) == public


@pytest.mark.parametrize(
    "wire",
    [
        b'* NAMESPACE (("" "/")) NIL NIL\r\n' + DONE,
        b'* NAMESPACE (("" "/")) (("Users/" "/")) NIL\r\n' + DONE,
        b'* NAMESPACE (("" "/"))\r\n' + DONE,  # a broken answer without the other two parts
        DONE,
        b"",
    ],
)
def test_namespace_without_a_public_namespace(wire: bytes) -> None:
    """No public namespace: the accounts root falls back to a private "Accounts"."""
    assert parse_namespace(framed(wire)) == (None, None)


# -- message_id_of -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "message_id"),
    [
        (b"From: a@example.com\r\nMessage-ID: <abc@example.com>\r\n\r\n", "<abc@example.com>"),
        # Folded onto the next line, as long IDs often are.
        (
            b"Subject: Hi\r\nMessage-ID:\r\n <folded.123@mail.example.com>\r\nTo: b@x.org\r\n\r\n",
            "<folded.123@mail.example.com>",
        ),
        (b"Message-ID:\r\n\t<tab@x.org>\r\n\r\n", "<tab@x.org>"),
        # Field names are case-insensitive; the ID itself keeps its case.
        (b"MESSAGE-ID: <AbC@Example.COM>\r\n\r\n", "<AbC@Example.COM>"),
        (b"message-id:<x@y.org>\r\n\r\n", "<x@y.org>"),
        (b"Message-Id: <lf@x.org>\nSubject: bare LF\n\n", "<lf@x.org>"),
        # The first of two, as parse_mail takes it.
        (b"Message-ID: <one@x.org>\r\nMessage-ID: <two@x.org>\r\n\r\n", "<one@x.org>"),
    ],
)
def test_message_id_of(header: bytes, message_id: str) -> None:
    assert message_id_of(header) == message_id
    # The filer compares it with the ID parse_mail read when the message arrived.
    assert parse_mail(header).message_id == message_id


@pytest.mark.parametrize(
    "header",
    [
        b"From: a@example.com\r\nSubject: no id\r\n\r\n",
        b"",
        # Other fields that end in Message-ID are not it.
        b"X-Original-Message-ID: <old@x.org>\r\nResent-Message-ID: <r@x.org>\r\n\r\n",
        # Nor is a continuation line that happens to say it.
        b"Subject: about\r\n Message-ID: <in-subject@x.org>\r\n\r\n",
        # An empty field must not borrow the next field's angle brackets.
        b"Message-ID:\r\nIn-Reply-To: <parent@x.org>\r\n\r\n",
    ],
)
def test_message_id_of_without_one(header: bytes) -> None:
    assert message_id_of(header) is None
