"""Capability rewriting: COMPRESS and the upstream's STARTTLS go, the proxy's own STARTTLS comes."""

from __future__ import annotations

import pytest

from commsproxy.imap.capability import rewrite_capabilities, strip_capability_code

REWRITES: list[tuple[bytes, bool, bytes]] = [
    # untagged CAPABILITY data
    (
        b"* CAPABILITY IMAP4rev1 STARTTLS COMPRESS=DEFLATE IDLE\r\n",
        False,
        b"* CAPABILITY IMAP4rev1 IDLE\r\n",
    ),
    (
        b"* CAPABILITY IMAP4rev1 STARTTLS COMPRESS=DEFLATE IDLE\r\n",
        True,
        b"* CAPABILITY IMAP4rev1 IDLE STARTTLS\r\n",
    ),
    (b"* CAPABILITY IMAP4rev1 IDLE\r\n", True, b"* CAPABILITY IMAP4rev1 IDLE STARTTLS\r\n"),
    (b"* CAPABILITY IMAP4rev1 IDLE\r\n", False, b"* CAPABILITY IMAP4rev1 IDLE\r\n"),
    (b"* CAPABILITY IMAP4rev1 COMPRESS=ZSTD\r\n", False, b"* CAPABILITY IMAP4rev1\r\n"),
    (
        b"* capability imap4rev1 starttls compress=deflate\r\n",
        False,
        b"* capability imap4rev1\r\n",
    ),
    (b"* CAPABILITY IMAP4rev1 STARTTLS\n", False, b"* CAPABILITY IMAP4rev1\n"),  # bare LF kept
    (b"* CAPABILITY IMAP4rev1 STARTTLS", False, b"* CAPABILITY IMAP4rev1"),  # no line end
    (
        b"* CAPABILITY IMAP4rev1 X-STARTTLS-LIKE XCOMPRESS=1 LOGINDISABLED\r\n",
        False,
        b"* CAPABILITY IMAP4rev1 X-STARTTLS-LIKE XCOMPRESS=1 LOGINDISABLED\r\n",
    ),
    # [CAPABILITY ...] codes in the greeting and in tagged OK
    (
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS COMPRESS=DEFLATE] Dovecot ready.\r\n",
        False,
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR] Dovecot ready.\r\n",
    ),
    (
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS COMPRESS=DEFLATE] Dovecot ready.\r\n",
        True,
        b"* OK [CAPABILITY IMAP4rev1 SASL-IR STARTTLS] Dovecot ready.\r\n",
    ),
    (
        b"* PREAUTH [CAPABILITY IMAP4rev1 COMPRESS=DEFLATE] Logged in as alice\r\n",
        False,
        b"* PREAUTH [CAPABILITY IMAP4rev1] Logged in as alice\r\n",
    ),
    (
        b"a1 OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE MOVE] Logged in\r\n",
        False,
        b"a1 OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n",
    ),
    (
        b"a1 OK [CAPABILITY IMAP4rev1 IDLE] Logged in\r\n",
        True,
        b"a1 OK [CAPABILITY IMAP4rev1 IDLE STARTTLS] Logged in\r\n",
    ),
]


@pytest.mark.parametrize(("line", "offer", "expected"), REWRITES)
def test_rewrite_capabilities(line: bytes, offer: bool, expected: bytes) -> None:
    assert rewrite_capabilities(line, offer_starttls=offer) == expected


@pytest.mark.parametrize(("line", "offer", "_expected"), REWRITES)
def test_starttls_offered_at_most_once(line: bytes, offer: bool, _expected: bytes) -> None:
    caps = rewrite_capabilities(line, offer_starttls=offer).upper().split()
    assert caps.count(b"STARTTLS") + caps.count(b"STARTTLS]") == int(offer)
    assert not any(cap.startswith(b"COMPRESS=") for cap in caps)


UNCHANGED = [
    b"* OK Dovecot ready.\r\n",
    b"* OK [ALERT] The server is going down\r\n",
    b"a1 OK [READ-WRITE] Select completed\r\n",
    b"a1 OK Logged in\r\n",
    b"a2 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n",
    b"* 1 FETCH (BODY[] {5}\r\n",
    b"* 3 EXISTS\r\n",
    b"+ idling\r\n",
    b'* LIST (\\HasNoChildren) "/" "CAPABILITY STARTTLS"\r\n',
    b"a3 OK Capability completed, STARTTLS COMPRESS=DEFLATE mentioned in text\r\n",
    b"\r\n",
    b"",
]


@pytest.mark.parametrize("offer", [False, True])
@pytest.mark.parametrize("line", UNCHANGED)
def test_other_lines_unchanged(line: bytes, offer: bool) -> None:
    assert rewrite_capabilities(line, offer_starttls=offer) == line


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b"* OK [CAPABILITY IMAP4rev1 STARTTLS] Dovecot ready.\r\n",
            b"* OK Dovecot ready.\r\n",
        ),
        (
            b"* OK [capability IMAP4rev1] ready\r\n",
            b"* OK ready\r\n",
        ),
        (b"* OK Dovecot ready.\r\n", b"* OK Dovecot ready.\r\n"),
        (b"* OK [ALERT] hi\r\n", b"* OK [ALERT] hi\r\n"),
        (b"* CAPABILITY IMAP4rev1\r\n", b"* CAPABILITY IMAP4rev1\r\n"),
    ],
)
def test_strip_capability_code(line: bytes, expected: bytes) -> None:
    assert strip_capability_code(line) == expected
