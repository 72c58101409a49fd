"""The follow-up address through the proxy's SMTP side to Dovecot's submission service.

smtplib → commsproxy → Dovecot submission → relay target (which records what left) → LMTP.
The reserved address is answered by the proxy itself: the relay target never sees it, neither
as a recipient nor in a header, and the real recipients get the message.
"""

from __future__ import annotations

import smtplib
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from commsproxy.triage.state_store import FollowUp, StateStore
from tests.clients.helpers import client_env, require_program, run_client
from tests.integration.test_filing import TEAM_DOMAIN, Member, accounts_table
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.relay_target import CapturedMessage
from tests.testbed.triage import wait_until

User = tuple[str, str]


def _captured_with(dovecot: Dovecot, token: bytes, timeout: float = 15) -> list[CapturedMessage]:
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in dovecot.relay.captured() if token in m.content]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _message(token: str, sender: str, to: str, cc: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nCc: {cc}\r\nSubject: offer {token}\r\n"
        f"Message-ID: <{token}@team.example>\r\n\r\nThe offer, as promised.\r\n"
    ).encode()


def test_the_follow_up_address_is_accepted_and_never_leaves(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    recipient = dovecot.new_user()[0]
    token = uuid.uuid4().hex
    # The user typed it into Cc; the client sends it as a recipient as well.
    body = _message(token, f"{imap_user[0]}@localhost", f"{recipient}@localhost",
                    "Later <2d@followup.invalid>")  # fmt: skip
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        smtp.login(*imap_user)
        refused = smtp.sendmail(
            f"{imap_user[0]}@localhost",
            [f"{recipient}@localhost", "2d@followup.invalid", "never@followup.invalid"],
            body,
        )
    assert refused == {}
    (captured,) = _captured_with(dovecot, token.encode())
    assert captured.rcpt_tos == (f"{recipient}@localhost",)
    content = captured.content
    assert b"followup.invalid" not in content.lower()
    assert b"The offer, as promised." in content
    assert "follow-up address taken out" in proxy.log_text()


def test_a_malformed_follow_up_address_is_refused_with_what_is_expected(
    proxy: ProxyProcess, imap_user: User
) -> None:
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        smtp.login(*imap_user)
        smtp.mail(f"{imap_user[0]}@localhost")
        code, text = smtp.rcpt("soonish@followup.invalid")
        assert code == 553
        assert text.startswith(b"5.1.3 ")
        assert b"expected e.g. 2d@followup.invalid" in text
        smtp.rset()


def test_a_message_to_the_follow_up_address_alone_is_refused_at_data(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User
) -> None:
    token = uuid.uuid4().hex
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        smtp.login(*imap_user)
        smtp.mail(f"{imap_user[0]}@localhost")
        assert smtp.rcpt("4h@followup.invalid")[0] == 250
        with pytest.raises(smtplib.SMTPDataError) as raised:
            smtp.data(_message(token, "me@localhost", "4h@followup.invalid", "x@localhost"))
        assert raised.value.smtp_code == 554
        assert b"no recipient besides the follow-up address" in raised.value.smtp_error
        smtp.rset()
    assert not _captured_with(dovecot, token.encode(), timeout=0.5)


def test_swaks_with_the_follow_up_address_in_to_and_cc(
    proxy: ProxyProcess, dovecot: Dovecot, imap_user: User, tmp_path: Path
) -> None:
    user, password = imap_user
    recipient = dovecot.new_user()[0]
    token = uuid.uuid4().hex
    common = [
        require_program("swaks"),
        "--server", f"127.0.0.1:{proxy.smtp_port}",
        "--auth-user", user, "--auth-password", password,
        "--from", f"{user}@localhost", "--timeout", "20",
    ]  # fmt: skip
    run_client(
        [*common, "--to", f"{recipient}@localhost,monday@followup.invalid",
         "--header", f"Subject: {token}", "--header", "Cc: monday@followup.invalid"],
        env=client_env(tmp_path),
    )  # fmt: skip
    (captured,) = _captured_with(dovecot, token.encode())
    assert captured.rcpt_tos == (f"{recipient}@localhost",)
    assert b"followup.invalid" not in captured.content.lower()
    refused = run_client(
        [*common, "--to", "someday@followup.invalid"],
        env=client_env(tmp_path),
        expect_success=False,
    )
    assert refused.returncode == 24  # swaks: no recipient accepted
    assert "553 5.1.3 commsproxy: 'someday' is not a follow-up time" in refused.stdout


@pytest.fixture(scope="module")
def member(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Member]:
    """One user behind a proxy that runs triage (follow-ups on, as by default)."""
    name = f"Acme {uuid.uuid4().hex[:8]}"
    one = Member(dovecot, tmp_path_factory.mktemp("followup") / "me", name, accounts_table(name))
    try:
        one.start()
        yield one
    finally:
        one.stop()


def test_the_follow_up_time_reaches_triage(member: Member) -> None:
    """``4h@`` sets the sent message's follow-up four hours on; ``never@`` watches none."""
    sent: dict[str, str] = {}
    for local in ("4h", "never"):
        mid = f"<{uuid.uuid4().hex}@{TEAM_DOMAIN}>"
        sent[local] = mid
        headers = {"From": member.address, "To": "ceo@acme.example", "Subject": "the offer",
                   "Message-ID": mid, "Bcc": f"{local}@followup.invalid"}  # fmt: skip
        member.send(
            render(headers, "As promised."), ["ceo@acme.example", f"{local}@followup.invalid"]
        )
    with StateStore.open(member.directory / "state") as store:

        def watched(mid: str) -> FollowUp | None:
            return store.followup(member.user, mid)

        assert wait_until(lambda: watched(sent["4h"]) is not None, 10)
        four = watched(sent["4h"])
        assert four is not None
        assert four.state == "waiting"
        assert four.due_at - four.sent_at == timedelta(hours=4)
        never = watched(sent["never"])
        assert never is None or never.state == "cancelled"
