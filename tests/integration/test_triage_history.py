"""The history with senders, read live from the real Dovecot: first start, updates, restart.

A login whose Sent holds replies to a customer (Ann at acme.example, an [accounts] domain) and
to a colleague (Bob at corp.example, the user's own domain). The first ``run`` reads it (headers
only), ``status`` shows how; a message Ann sends is counted when triaged, a reply sent through
the SMTP side and one a phone appends to Sent are matched with what they answer, and a restart
loads the saved history instead of reading the server again.
"""

from __future__ import annotations

import imaplib
import json
import os
import re
import shlex
import smtplib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from commsproxy.classifier.mail import parse_mail
from commsproxy.config import load_config
from commsproxy.triage.history import LiveHistory
from commsproxy.triage.state_store import StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import quiet_batches, triage_proxy, wait_until

ME = "me@corp.example"
ANN, BOB = "ann@acme.example", "bob@corp.example"
NOW = datetime.now(UTC).replace(microsecond=0)
READY = r"history\[[^\]]+\]: ready"
DECISION = re.compile(r"triage\[[^\]]+\]: uid \d+ ")


def received(mid: str, sender: str, subject: str, when: datetime) -> bytes:
    headers = {"From": sender, "To": ME, "Subject": subject, "Message-ID": mid}
    return render(headers | {"Date": format_datetime(when)}, f"About {subject}.")


def reply(mid: str, to: str, parent: str, subject: str, when: datetime) -> bytes:
    headers = {"From": f"Me <{ME}>", "To": to, "Subject": f"Re: {subject}", "Message-ID": mid}
    headers |= {"In-Reply-To": parent, "References": parent, "Date": format_datetime(when)}
    return render(headers, "Thanks, will do.")


class Login:
    """A fresh user with mail and replies, its config (SMTP side on) and its proxies."""

    def __init__(self, dovecot: Dovecot, directory: Path) -> None:
        self.dovecot = dovecot
        self.user, self.password = dovecot.new_user()
        self.directory = directory
        self.proxies: list[ProxyProcess] = []
        directory.mkdir(parents=True)
        self.config = directory / "config.toml"
        password = f"printf %s {shlex.quote(self.password)}"
        self.config.write_text(
            f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{directory / "state"}"

[[login]]
username = "{self.user}"
password_command = {json.dumps(password)}
upstream_imap = "imap://127.0.0.1:{dovecot.imap_port}"
upstream_smtp = "smtp+starttls://localhost:{dovecot.submission_port}"
cafile = "{dovecot.ca_file}"

[web]
enabled = false

[triage]
history_seconds = 60
history_messages = 1000
history_sent_check = 1
{quiet_batches()}
[accounts]
internal_domains = ["corp.example"]
[accounts.acme]
name = "Acme"
domains = ["acme.example"]
""",
            encoding="utf-8",
        )

    def imap(self) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port, timeout=30)
        conn.login(self.user, self.password)
        return conn

    def start(self) -> ProxyProcess:
        proxy = triage_proxy(self.config)
        self.proxies.append(proxy)
        assert proxy.wait_for_log(READY + "|loaded", 60), proxy.log_text()
        return proxy

    def status(self) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "commsproxy", "status", "--json", "--config", str(self.config)],
            capture_output=True, text=True, timeout=60, check=True,
            env={**os.environ, "COMMSPROXY_CONFIG": "/nonexistent/commsproxy.toml"},
        )  # fmt: skip
        login: dict[str, Any] = json.loads(result.stdout)["logins"][0]
        return login

    def history(self) -> LiveHistory:
        """The saved history, as the next start will load it."""
        with StateStore.open(self.directory / "state") as store:
            record = store.history(self.user)
        assert record is not None
        assert record.document is not None
        history = LiveHistory(accounts=load_config(self.config).accounts)
        history.load_document(json.loads(record.document))
        return history


def decisions(proxy: ProxyProcess) -> list[str]:
    return [line for line in proxy.lines() if DECISION.search(line)]


@pytest.fixture
def login(dovecot: Dovecot, tmp_path: Path) -> Iterator[Login]:
    """Ann wrote 4 times (3 answered after 10, 20, 30 min); Bob twice (1 answered after an
    hour); Trash holds a message nobody should count."""
    made = Login(dovecot, tmp_path / "commsproxy")
    with made.imap() as conn:
        for i, minutes in enumerate((10, 20, 30, None)):
            at = NOW - timedelta(days=4 - i)
            conn.append("INBOX", r"(\Seen)", None, received(f"<a{i}@acme>", ANN, f"order {i}", at))
            if minutes is not None:
                late = at + timedelta(minutes=minutes)
                conn.append("Sent", r"(\Seen)", None, reply(f"<ra{i}@corp>", ANN, f"<a{i}@acme>",
                            f"order {i}", late))  # fmt: skip
        for i in range(2):
            at = NOW - timedelta(days=3 - i)
            conn.append("INBOX", r"(\Seen)", None, received(f"<b{i}@corp>", BOB, f"plan {i}", at))
        conn.append("Sent", r"(\Seen)", None, reply("<rb0@corp>", BOB, "<b0@corp>", "plan 0",
                    NOW - timedelta(days=3) + timedelta(hours=1)))  # fmt: skip
        junk = received("<t0@spam>", "trash@spam.example", "win", NOW)
        conn.append("Trash", None, None, junk)
    yield made
    for proxy in made.proxies:
        proxy.stop()
    for proxy in made.proxies:
        assert "Traceback" not in proxy.log_text(), proxy.log_text()


def test_first_start_reads_updates_and_restart_loads(login: Login) -> None:
    proxy = login.start()
    # The first start read the server: 6 received and 4 sent headers, Trash left out.
    status = login.status()["history"]
    assert status["state"] == "ready"
    assert status["messages"] == 10
    assert status["stopped"] is None
    assert status["senders"] == 2
    text = subprocess.run(
        [sys.executable, "-m", "commsproxy", "status", "--config", str(login.config)],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    line = next(line for line in text.splitlines() if "history with senders" in line)
    assert line.startswith("  history with senders: 2 senders; 10 headers from 2 folder(s)")
    assert "@" not in line  # counts, never names
    told = [line for line in proxy.lines() if "history[" in line]
    assert told
    assert not [line for line in told if ANN in line or BOB in line]
    first = login.history()
    assert first.known
    assert first.user_addresses == {ME}
    ann = first.sender_stats(ANN)
    assert (ann.received, ann.replied, ann.median_reply_minutes) == (4, 3, 20.0)
    bob = first.sender_stats(BOB)
    assert (bob.received, bob.replied, bob.median_reply_minutes) == (2, 1, 60.0)
    assert first.sender_stats("trash@spam.example").received == 0
    assert first.relation(ANN) == "customer"
    assert first.relation(BOB) == "colleague"
    with login.imap() as conn:  # headers only, with PEEK: the unread reply stays unread
        conn.select("INBOX", readonly=True)
        assert conn.search(None, "UNSEEN")[1] == [b""]

    # Ann writes again: triage counts it once (the six read messages already in INBOX were
    # left in place at the first start); the user answers through the SMTP side.
    assert "first start: 6 message(s) already in INBOX left in place" in proxy.log_text()
    a4 = received("<a4@acme>", ANN, "order 4", NOW)
    login.dovecot.deliver(login.user, a4)
    assert wait_until(lambda: len(decisions(proxy)) == 1, 20), proxy.log_text()
    sent = reply("<ra4@corp>", ANN, "<a4@acme>", "order 4", NOW + timedelta(minutes=40))
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
        smtp.login(login.user, login.password)
        smtp.sendmail(ME, [ANN], sent)
    # A phone answers Bob's second message and files its copy in Sent.
    phone = reply("<rb1@corp>", BOB, "<b1@corp>", "plan 1", NOW - timedelta(days=2, hours=-3))
    with login.imap() as conn:
        conn.append("Sent", r"(\Seen)", None, phone)
    assert proxy.wait_for_log(r"history\[[^\]]+\]: 1 message\(s\) found in Sent", 20), (
        proxy.log_text()
    )
    proxy.stop()  # saves what it has

    after = login.history()
    ann = after.sender_stats(ANN)
    assert (ann.received, ann.replied, ann.median_reply_minutes) == (5, 4, 25.0)
    bob = after.sender_stats(BOB)
    assert (bob.received, bob.replied, bob.median_reply_minutes) == (2, 2, 120.0)
    # An answer to the message sent through the proxy is a reply to the user's message.
    answer = parse_mail(
        b"From: ann@acme.example\r\nTo: me@corp.example\r\nSubject: Re: Re: order 4\r\n"
        b"In-Reply-To: <ra4@corp>\r\n\r\nok\r\n"
    )
    assert after.context(answer, frozenset()).replies_to_user

    # A restart loads the saved history and catches up; it does not read the server again.
    with StateStore.open(login.directory / "state") as store:
        before = store.history_status(login.user)
    again = login.start()
    assert again.wait_for_log(r"history\[[^\]]+\]: loaded: 2 senders", 5), again.log_text()
    assert "reading the history" not in again.log_text()
    with StateStore.open(login.directory / "state") as store:
        assert store.history_status(login.user) == before
