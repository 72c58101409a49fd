"""Sending through the proxy's SMTP side to Dovecot's submission service, with smtplib.

The chain is: smtplib → commsproxy → Dovecot submission (AUTH) → relay target → LMTP → INBOX.
The promise tested here: 250 only once the upstream has the message, and the upstream's own
code and text whenever it refuses.
"""

from __future__ import annotations

import smtplib
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.helpers import client_context, message
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args
from tests.testbed.relay_target import REFUSED_PREFIX

User = tuple[str, str]


def _wait_for_count(dovecot: Dovecot, user: str, count: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while dovecot.message_count(user) < count:
        assert time.monotonic() < deadline, f"{user} did not get {count} messages"
        time.sleep(0.05)


@pytest.mark.parametrize("starttls", [False, True], ids=["plain", "starttls"])
def test_send_with_auth_arrives(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User, starttls: bool
) -> None:
    recipient = dovecot.new_user()[0]
    body = message("sent through commsproxy")
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        if starttls:
            smtp.starttls(context=client_context(dovecot))
        smtp.login(*imap_user)
        refused = smtp.sendmail(f"{imap_user[0]}@localhost", [f"{recipient}@localhost"], body)
        assert refused == {}
    _wait_for_count(dovecot, recipient, 1)
    captured = dovecot.relay_captured()
    assert any(m.endswith(body) for m in captured)
    assert imap_user[1] not in proxy.log_text()


def test_refused_recipient_gets_upstream_code_others_delivered(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    recipient = dovecot.new_user()[0]
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        smtp.login(*imap_user)
        refused = smtp.sendmail(
            f"{imap_user[0]}@localhost",
            [f"{REFUSED_PREFIX}x@example.net", f"{recipient}@localhost"],
            message("partly refused"),
        )
    (code, text) = refused[f"{REFUSED_PREFIX}x@example.net"]
    assert code == 550
    assert b"no such mailbox" in text
    _wait_for_count(dovecot, recipient, 1)


def test_wrong_password_gets_upstream_535(proxy: ProxyProcess, imap_user: User) -> None:
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as raised:
            smtp.login(imap_user[0], "not-the-password")
        assert raised.value.smtp_code == 535


def test_unauthenticated_relay_refused_by_upstream(proxy: ProxyProcess, dovecot: Dovecot) -> None:
    """Without AUTH the upstream refuses; the proxy must pass that on, not accept the mail."""
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as raised:
            smtp.sendmail("x@localhost", ["alice@localhost"], message())
        assert raised.value.smtp_code == 530  # Dovecot: authentication required


def test_message_over_size_limit_refused(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot, imap_user: User, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nmax_message_size = "100K"\n')
    small = make_proxy([*proxy_args(dovecot), "--config", str(config)])
    with smtplib.SMTP("127.0.0.1", small.smtp_port, timeout=30) as smtp:
        smtp.login(*imap_user)
        # smtplib announces SIZE in MAIL FROM, so the refusal comes before the data is sent.
        with pytest.raises(smtplib.SMTPSenderRefused) as raised:
            smtp.sendmail(
                f"{imap_user[0]}@localhost",
                [f"{imap_user[0]}@localhost"],
                message(body="x" * 200_000),
            )
        assert raised.value.smtp_code == 552


def test_upstream_down_gives_temporary_error(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot, imap_user: User
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    proxy = make_proxy([
        "--no-triage",
        "--upstream", f"imap://127.0.0.1:{dovecot.imap_port}",
        "--smtp-upstream", f"smtp://127.0.0.1:{dead}",
        "--listen", "127.0.0.1:0", "--smtp-listen", "127.0.0.1:0",
    ])  # fmt: skip
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        with pytest.raises(smtplib.SMTPSenderRefused) as raised:
            smtp.sendmail("x@localhost", ["y@localhost"], message())
        assert raised.value.smtp_code == 451
        assert b"unavailable" in raised.value.smtp_error
    assert proxy.wait_for_log(r"smtp: upstream 127\.0\.0\.1:\d+ failed")
