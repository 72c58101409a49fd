"""Small helpers for integration tests: test messages and connections through the proxy."""

from __future__ import annotations

import imaplib
import ssl
import uuid

from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

MODES = ("plain", "starttls", "implicit-tls")


def message(subject: str | None = None, body: str = "Hello from the test suite.\r\n") -> bytes:
    """A small RFC 5322 message with a unique Message-ID (and subject, unless given)."""
    token = uuid.uuid4().hex
    subject = subject or f"test {token[:8]}"
    return (
        f"From: Customer <customer@example.org>\r\n"
        f"To: user@example.com\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{token}@example.org>\r\n"
        f"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"\r\n"
        f"{body}"
    ).encode()


def client_context(dovecot: Dovecot) -> ssl.SSLContext:
    """What a client trusts: the CA that signed the proxy's local certificate."""
    return ssl.create_default_context(cafile=str(dovecot.ca_file))


def connect(proxy: ProxyProcess, dovecot: Dovecot, mode: str = "plain") -> imaplib.IMAP4:
    """An imaplib connection to the proxy in one of MODES."""
    if mode == "implicit-tls":
        return imaplib.IMAP4_SSL(
            "127.0.0.1", proxy.imaps_port, ssl_context=client_context(dovecot), timeout=30
        )
    conn = imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=30)
    if mode == "starttls":
        conn.starttls(client_context(dovecot))
    return conn


def login(
    proxy: ProxyProcess, dovecot: Dovecot, user: tuple[str, str], mode: str = "plain"
) -> imaplib.IMAP4:
    conn = connect(proxy, dovecot, mode)
    conn.login(*user)
    return conn
