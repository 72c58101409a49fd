"""read_imap against the real private Dovecot: folders, special-use, read-only, TLS."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator

import pytest

from commsproxy.classifier import imap_source
from commsproxy.classifier.dataset import ReadStats, is_sent_folder
from commsproxy.classifier.imap_source import (
    ImapSourceError,
    read_imap,
)
from commsproxy.classifier.mail import Mail
from commsproxy.endpoints import Security
from commsproxy.imap.mailbox_names import decode_name, encode_name
from tests.testbed.dovecot import Dovecot

TIMEOUT = 10.0


def _message(
    token: str, *, sender: str = "customer@example.org", to: str = "me@localhost"
) -> bytes:
    return (
        f"From: Customer <{sender}>\r\nTo: {to}\r\nSubject: {token}\r\n"
        f"Message-ID: <{token}@commsproxy.test>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n"
        f"\r\nbody of {token}\r\n"
    ).encode()


@pytest.fixture
def imap(dovecot: Dovecot, imap_user: tuple[str, str]) -> Iterator[imaplib.IMAP4]:
    client = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT)
    client.login(*imap_user)
    try:
        yield client
    finally:
        client.logout()


@pytest.fixture
def mailbox(dovecot: Dovecot, imap_user: tuple[str, str], imap: imaplib.IMAP4) -> str:
    """The user's mail: 3 in INBOX, 2 in Sent, 1 each in Junk, Trash, a folder and Archive."""
    user = imap_user[0]
    for n in range(3):
        dovecot.deliver(user, _message(f"inbox{n}"))
    for n in range(2):
        imap.append("Sent", "", None, _message(f"sent{n}", sender=f"{user}@localhost"))
    imap.append("Junk", "", None, _message("junk0"))
    imap.append("Trash", "", None, _message("trash0"))
    for name in ("Kunden/Müller & Söhne", "Archive"):
        wire = '"' + encode_name(name) + '"'
        assert imap.create(wire)[0] == "OK"
        assert imap.append(wire, "", None, _message(f"kept-{name[:3]}"))[0] == "OK"
    return user


def _read(
    dovecot: Dovecot, user: tuple[str, str], security: Security = Security.PLAIN, **kwargs: object
) -> tuple[list[Mail], ReadStats]:
    stats = ReadStats()
    port = dovecot.imap_port if security is not Security.IMPLICIT_TLS else dovecot.imaps_port
    mails = list(
        read_imap(
            "localhost" if security is not Security.PLAIN else dovecot.host,
            port,
            security,
            *user,
            cafile=dovecot.ca_file,
            stats=stats,
            **kwargs,  # type: ignore[arg-type]
        )
    )
    return mails, stats


def _unseen_everywhere(imap: imaplib.IMAP4) -> None:
    for folder in ("INBOX", "Sent", "Archive"):
        imap.select(folder, readonly=True)
        typ, data = imap.search(None, "SEEN")
        assert typ == "OK"
        assert data == [b""], f"{folder}: messages became \\Seen"


def test_reads_own_folders_read_only(
    dovecot: Dovecot,
    imap_user: tuple[str, str],
    mailbox: str,
    imap: imaplib.IMAP4,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(imap_source, "FETCH_BATCH", 2)  # INBOX takes two FETCH commands
    mails, stats = _read(dovecot, imap_user)

    by_folder: dict[str, list[str]] = {}
    for mail in mails:
        by_folder.setdefault(mail.folder, []).append(mail.subject)
    assert by_folder == {
        "INBOX": ["inbox0", "inbox1", "inbox2"],
        "Archive": ["kept-Arc"],
        "Kunden/Müller & Söhne": ["kept-Kun"],
        "Sent": ["sent0", "sent1"],
    }
    assert (stats.read, stats.skipped) == (7, 0)
    assert mails[0].folder == "INBOX"  # INBOX first

    # Sent is known by its special-use attribute, whatever it is called.
    assert "\\Sent" in stats.special_use["Sent"]
    assert "\\Archive" in stats.special_use["Archive"]
    assert stats.is_sent("Sent")
    assert not stats.is_sent("INBOX")
    assert not stats.is_sent("Archive")
    assert is_sent_folder("Kunden", stats.special_use["Sent"])

    first = mails[0]
    assert first.sender == "customer@example.org"
    assert first.message_id == "<inbox0@commsproxy.test>"
    assert first.size > len(b"body of inbox0")
    assert first.path is not None
    assert first.path.startswith(f"imap://{mailbox}@{dovecot.host}:{dovecot.imap_port}/INBOX;")
    assert first.path.endswith("/;UID=1")
    _unseen_everywhere(imap)


def test_empty_login(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    mails, stats = _read(dovecot, imap_user)
    assert mails == []
    assert (stats.read, stats.skipped) == (0, 0)
    assert set(stats.special_use) == {"INBOX", "Sent"}  # Junk, Trash, Drafts are not read


def test_named_folders_and_patterns(
    dovecot: Dovecot, imap_user: tuple[str, str], mailbox: str
) -> None:
    mails, stats = _read(dovecot, imap_user, folders=["Junk", "Kunden/*", "Nowhere"])
    assert sorted(mail.folder for mail in mails) == ["Junk", "Kunden/Müller & Söhne"]
    assert stats.skipped == 1
    assert "Nowhere" in stats.reasons[0]


def test_partial_fetch_reports_whole_size(
    dovecot: Dovecot, imap_user: tuple[str, str], mailbox: str
) -> None:
    big = _message("big").replace(b"body of big", b"x" * 50_000)
    dovecot.deliver(mailbox, big)
    mails, _ = _read(dovecot, imap_user, folders=["INBOX"], max_bytes=1_000)
    (mail,) = [m for m in mails if m.subject == "big"]
    assert mail.size >= 50_000
    assert len(mail.body) < 1_000


@pytest.mark.parametrize("security", [Security.IMPLICIT_TLS, Security.STARTTLS])
def test_tls_verified_with_the_ca(
    dovecot: Dovecot, imap_user: tuple[str, str], mailbox: str, security: Security
) -> None:
    mails, _ = _read(dovecot, imap_user, security, folders=["INBOX"])
    assert len(mails) == 3


def test_tls_refuses_an_unknown_ca(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    reader = read_imap(
        "localhost", dovecot.imaps_port, Security.IMPLICIT_TLS, *imap_user, cafile=None
    )
    with pytest.raises(ImapSourceError, match="certificate verify failed"):
        next(reader)


def test_bad_password_is_a_clear_error(dovecot: Dovecot, imap_user: tuple[str, str]) -> None:
    reader = read_imap(dovecot.host, dovecot.imap_port, Security.PLAIN, imap_user[0], "wrong")
    with pytest.raises(ImapSourceError, match="refused"):
        next(reader)


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("INBOX", "INBOX"),
        ("Entwürfe", "Entw&APw-rfe"),
        ("A & B", "A &- B"),
        ("日本語", "&ZeVnLIqe-"),
        ("~peter/mail/台北/日本語", "~peter/mail/&U,BTFw-/&ZeVnLIqe-"),
    ],
)
def test_modified_utf7(text: str, wire: str) -> None:
    assert encode_name(text) == wire
    assert decode_name(wire) == text
