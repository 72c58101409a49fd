"""Responses the history read needs: header fields by name, and whose namespaces are whose."""

from __future__ import annotations

import pytest

from commsproxy.imap.responses import Fetched, parse_fetch, parse_foreign_namespaces

from .framed import framed

DONE = b"a1 OK Fetch completed (0.001 + 0.000 secs).\r\n"
HEADER = b"From: a@example.com\r\nMessage-ID: <1@x>\r\n\r\n"


def test_fetch_header_fields_by_name() -> None:
    fields = b"BODY[HEADER.FIELDS (FROM TO CC DATE MESSAGE-ID IN-REPLY-TO REFERENCES SUBJECT)]"
    lines = framed(
        b"* 1 FETCH (UID 7 %s {%d}\r\n" % (fields, len(HEADER))
        + HEADER
        + b" FLAGS (\\Seen))\r\n"
        + b"* 2 FETCH (UID 9 %s {2}\r\n\r\n)\r\n" % fields
        + DONE
    )
    assert parse_fetch(lines) == [
        Fetched(uid=7, flags=frozenset({"\\Seen"}), header=HEADER),
        Fetched(uid=9, flags=frozenset(), header=b"\r\n"),
    ]


@pytest.mark.parametrize(
    ("line", "prefixes"),
    [
        (b'* NAMESPACE (("" "/")) (("Shared/" "/")) (("Public/" "/"))', ("Shared/", "Public/")),
        (b'* NAMESPACE (("" "/")) NIL (("Public/" "/") ("Team/" "/"))', ("Public/", "Team/")),
        (b'* NAMESPACE (("INBOX." ".")) NIL NIL', ()),
        (b"* NAMESPACE garbage", ()),
    ],
)
def test_foreign_namespaces(line: bytes, prefixes: tuple[str, ...]) -> None:
    assert (
        parse_foreign_namespaces(framed(line + b"\r\na1 OK Namespace completed.\r\n")) == prefixes
    )
