"""The IMAP answers filing reads: COPYUID, APPENDUID, STATUS, NAMESPACE, and Message-ID headers.

Lines are shaped as aioimaplib hands them over: untagged lines without ``* ``, the tagged
completion text last.
"""

from __future__ import annotations

import pytest

from commsproxy.classifier.mail import parse_mail
from commsproxy.triage.filer import message_id_of
from commsproxy.triage.imapdata import (
    parse_appenduid,
    parse_copyuid,
    parse_namespace,
    parse_status,
)

Lines = list[bytes | bytearray]

# -- parse_copyuid -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "mapping"),
    [
        # RFC 4315's own example.
        (
            [b"[COPYUID 38505 304,319:320 3956:3958] Done"],
            {304: 3956, 319: 3957, 320: 3958},
        ),
        (
            [b"[COPYUID 7 3:5,9 20:23] Copy completed (0.002 + 0.000 secs)."],
            {3: 20, 4: 21, 5: 22, 9: 23},
        ),
        ([b"[COPYUID 7 12 40] Copy completed."], {12: 40}),
        # Single UIDs pair up in the order written.
        ([b"[COPYUID 7 9,3 40,41] Copy completed."], {9: 40, 3: 41}),
        # Both ranges written downwards: the same sets, the same pairing.
        ([b"[COPYUID 7 5:3 12:10] Copy completed."], {3: 10, 4: 11, 5: 12}),
        ([b"[copyuid 7 1:2 5:6] copy completed"], {1: 5, 2: 6}),
        # MOVE: the code comes on an untagged OK before the expunges and the completion.
        (
            [
                b"OK [COPYUID 1700000000 8:9 101:102] Moved UIDs.",
                b"1 EXPUNGE",
                b"1 EXPUNGE",
                b"Move completed (0.003 + 0.000 secs).",
            ],
            {8: 101, 9: 102},
        ),
    ],
)
def test_copyuid(lines: Lines, mapping: dict[int, int]) -> None:
    assert parse_copyuid(lines) == mapping


@pytest.mark.parametrize(
    "lines",
    [
        [b"Copy completed (0.001 + 0.000 secs)."],
        [b"[UIDNOTSTICKY] Copy completed."],  # the server cannot say which UIDs it gave
        [b"[COPYUID 7] Copy completed."],
        [],
    ],
)
def test_copyuid_without_the_code(lines: Lines) -> None:
    """No mapping rather than an error: without UIDPLUS the server gives none."""
    assert parse_copyuid(lines) == {}


@pytest.mark.parametrize(("source", "destination"), [(b"5:3", b"10:12"), (b"3:5", b"12:10")])
def test_copyuid_range_direction_does_not_matter(source: bytes, destination: bytes) -> None:
    """A range is a set, whichever way it is written: 3:5 and 5:3 are both 3, 4, 5."""
    lines: Lines = [b"[COPYUID 7 " + source + b" " + destination + b"] Copy completed."]
    assert parse_copyuid(lines) == {3: 10, 4: 11, 5: 12}


# -- parse_appenduid -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "uid"),
    [
        ([b"[APPENDUID 38505 3955] APPEND completed"], 3955),
        ([b"[appenduid 1 7] Append completed (0.004 + 0.000 secs)."], 7),
        ([b"1 EXISTS", b"[APPENDUID 1700000000 42] Append completed."], 42),
        ([b"Append completed."], None),
        ([b"[UIDNOTSTICKY] Append completed."], None),
        ([], None),
    ],
)
def test_appenduid(lines: Lines, uid: int | None) -> None:
    assert parse_appenduid(lines) == uid


# -- parse_status --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "items"),
    [
        (
            [
                b'STATUS "Accounts/Acme" (MESSAGES 3 UIDNEXT 9 UIDVALIDITY 1700000000)',
                b"Status completed (0.001 + 0.000 secs).",
            ],
            {"MESSAGES": 3, "UIDNEXT": 9, "UIDVALIDITY": 1700000000},
        ),
        (
            [b"INBOX (messages 0 unseen 2 recent 1)", b"Status completed."],
            {"MESSAGES": 0, "UNSEEN": 2, "RECENT": 1},
        ),
        # A name with parentheses and item names in it: only the item list counts.
        ([b'STATUS "Unseen 4 (MESSAGES 7)" (UIDNEXT 5)', b"Status completed."], {"UIDNEXT": 5}),
        # Items the filer does not read are left out.
        (
            [b"STATUS Acme (MESSAGES 1 HIGHESTMODSEQ 99 SIZE 1234)", b"Status completed."],
            {"MESSAGES": 1},
        ),
    ],
)
def test_status(lines: Lines, items: dict[str, int]) -> None:
    assert parse_status(lines) == items


@pytest.mark.parametrize(
    "lines",
    [
        [b"STATUS Acme ()", b"Status completed."],
        [b"Status completed (MESSAGES 5)"],  # the completion text is never an answer
        [b"Mailbox doesn't exist: Acme"],
        [],
    ],
)
def test_status_without_items(lines: Lines) -> None:
    assert parse_status(lines) == {}


# -- parse_namespace -----------------------------------------------------------------------------

DONE = b"Namespace completed (0.001 + 0.000 secs)."


@pytest.mark.parametrize(
    ("lines", "public"),
    [
        ([b'NAMESPACE (("" "/")) NIL (("Public/" "/"))', DONE], ("Public/", "/")),
        ([b'(("" "/")) NIL (("Public/" "/"))', DONE], ("Public/", "/")),
        ([b'namespace (("" "/")) NIL (("Public/" "/"))', DONE], ("Public/", "/")),
        # Several shared namespaces: the first one.
        (
            [b'NAMESPACE (("" "/")) (("Users/" "/")) (("Public/" "/")("Shared/" "/"))', DONE],
            ("Public/", "/"),
        ),
        # A "." separator, a modified UTF-7 prefix and extension data after the pair.
        (
            [b'NAMESPACE (("INBOX." ".")) NIL (("&AMk-quipe." "." "X-PARAM" ("a")))', DONE],
            ("\u00c9quipe.", "."),
        ),
        ([b'NAMESPACE NIL NIL (("#shared/" "/"))', DONE], ("#shared/", "/")),
        ([b'NAMESPACE (("" "/")) NIL (("Public" NIL))', DONE], ("Public", None)),
    ],
)
def test_namespace_with_a_public_namespace(
    lines: Lines, public: tuple[str | None, str | None]
) -> None:
    assert parse_namespace(lines) == public


@pytest.mark.parametrize(
    "lines",
    [
        [b'NAMESPACE (("" "/")) NIL NIL', DONE],
        [b'NAMESPACE (("" "/")) (("Users/" "/")) NIL', DONE],
        [b'NAMESPACE (("" "/"))', DONE],  # a broken answer without the other two parts
        [DONE],
        [],
    ],
)
def test_namespace_without_a_public_namespace(lines: Lines) -> None:
    """No public namespace: the accounts root falls back to a private "Accounts"."""
    assert parse_namespace(lines) == (None, None)


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
