"""The digest of a real release against the real Dovecot: unread, dated at the release, in order.

A running ``commsproxy run`` holds a newsletter (Later/Bulk) and a reply in a thread (Later),
and delivers a VIP's message, which the user then moves to Later; two more messages are put
into Later by hand, as a user or another program might: two from a customer (an ``[accounts]``
domain), one of which says it cannot wait. ``release --now`` releases both
batches; each digest is then read back from INBOX as any mail program would read it.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from commsproxy.triage.digest import MISTAKES, OTHER_MAIL
from tests.integration.test_triage import (
    HELD,
    Account,
    newsletter,
    thread_reply,
    uid_of,
    vip_mail,
    wait_decided,
    wait_in,
)
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot

ACCOUNTS = """
[accounts]
model = "none"

[accounts.acme]
name = "Acme"
domains = ["acme.example"]
"""


@pytest.fixture
def account(dovecot: Dovecot, tmp_path: Path) -> Iterator[Account]:
    made = Account(dovecot, tmp_path / "commsproxy")
    text = made.config.read_text(encoding="utf-8")
    made.config.write_text(text + ACCOUNTS, encoding="utf-8")
    yield made
    for proxy in made.proxies:
        proxy.stop()
    for proxy in made.proxies:
        assert "Traceback" not in proxy.log_text(), proxy.log_text()


def by_hand(account: Account, mailbox: str, message: bytes) -> None:
    conn = account.imap()
    try:
        typ, data = conn.append(mailbox, None, None, message)
        assert typ == "OK", data
    finally:
        conn.logout()


def digests(account: Account) -> dict[str, tuple[EmailMessage, set[str], float]]:
    """Subject -> (the digest as parsed, its flags, its INTERNALDATE as a timestamp)."""
    conn = account.imap()
    found: dict[str, tuple[EmailMessage, set[str], float]] = {}
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("SEARCH", "KEYWORD", "$Digest")
        assert typ == "OK", data
        for uid in (data[0] or b"").decode().split():
            typ, parts = conn.uid("FETCH", uid, "(FLAGS INTERNALDATE BODY.PEEK[])")
            assert typ == "OK", parts
            head, raw = next(part for part in parts if isinstance(part, tuple))
            message = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            flags = set(re.search(rb"FLAGS \(([^)]*)\)", head).group(1).decode().split())  # type: ignore[union-attr]
            when = imaplib.Internaldate2tuple(head)
            assert when is not None, head
            found[str(message["Subject"])] = (message, flags, time.mktime(when))
    finally:
        conn.logout()
    return found


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def test_a_release_appends_an_unread_digest_dated_at_the_release(account: Account) -> None:
    proxy = account.start()
    news, reply, vip = "<news-1@test.example>", "<reply-1@test.example>", "<vip-1@test.example>"
    account.deliver(newsletter(news))
    account.deliver(thread_reply(reply))
    account.deliver(vip_mail(vip))
    wait_decided(proxy, 3)
    wait_in(account, news, HELD)
    wait_in(account, reply, ("Later",))
    # The user moves the VIP's message, delivered at once, to wait in Later.
    conn = account.imap()
    conn.select("INBOX")
    typ, data = conn.uid("MOVE", uid_of(conn, vip), "Later")
    assert typ == "OK", data
    conn.logout()
    customer = render(
        {"From": "Bob Buyer <bob@acme.example>", "To": "me@example.com",
         "Subject": "Order 1234", "Message-ID": "<acme-1@test.example>",
         "Date": "Mon, 23 Nov 2026 09:00:00 +0000"},
        "Here is the order for next month.",
    )  # fmt: skip
    urgent = render(
        {"From": "Carl Kunde <carl@acme.example>", "To": "me@example.com",
         "Subject": "Unsere Kasse: Störung", "Message-ID": "<urgent-1@test.example>",
         "Date": "Mon, 23 Nov 2026 08:00:00 +0000"},
        "Our shop system is down since this morning. Please call me back as soon as you can.",
    )  # fmt: skip
    by_hand(account, "Later", customer)
    by_hand(account, "Later", urgent)

    before = time.time()
    result = account.cli("release", "--now")
    after = time.time()
    assert result.returncode == 0, result.stderr
    assert "released by commsproxy run" in result.stdout, result.stdout

    found = digests(account)
    assert set(found) == {
        "commsproxy: 4 held messages released (later)",
        "commsproxy: 1 held message released (bulk)",
    }, found
    for message, flags, arrived in found.values():
        assert "$Digest" in flags
        assert "\\Seen" not in flags  # unread: it is news
        assert message.get_content_type() == "multipart/alternative"
        kinds = [part.get_content_type() for part in message.iter_parts()]
        assert kinds == ["text/plain", "text/html"]
        assert not message.defects
        dated = parsedate_to_datetime(str(message["Date"])).timestamp()
        assert before - 1 <= dated <= after + 1, (before, dated, after)
        assert before - 1 <= arrived <= after + 1, (before, arrived, after)

    later, _, _ = found["commsproxy: 4 held messages released (later)"]
    lines = text_part(later).splitlines()
    items = [line for line in lines if line.startswith("* ")]
    assert items[0] == "* Carl Kunde <carl@acme.example>: Unsere Kasse: Störung", lines
    assert lines[lines.index(items[0]) + 1] == "  Customer: Acme"
    assert lines.index(MISTAKES) < lines.index("Acme") < lines.index(OTHER_MAIL), lines
    assert lines.index("Acme") < lines.index("* Bob Buyer <bob@acme.example>: Order 1234")
    assert lines.index(OTHER_MAIL) < next(
        i for i, line in enumerate(lines) if line.startswith("* Anna Smith <anna@example.org>")
    )
    mistake = next(line for line in lines if line.startswith("  Perhaps a mistake: "))
    assert "it says" in mistake
    assert "asks you to call" in mistake
    reasons = [line for line in lines if line.startswith("  Why it waited: ")]
    assert len(reasons) == 4
    boss = lines.index("* Boss <boss@example.com>: contract today")
    assert lines[boss + 1] == "  Why it waited: it came at once, and you moved it here to wait"
    assert lines[boss + 2].startswith("  Should this have come at once?")  # no "mistake" line
    assert boss > lines.index(OTHER_MAIL)
    assert all("held:" not in line and "urgent from" not in line for line in reasons), reasons
    assert "Unsere Kasse: Störung" in html_part(later)

    bulk, _, _ = found["commsproxy: 1 held message released (bulk)"]
    text = text_part(bulk)
    assert "* News <noreply@news.example.org>: Weekly digest" in text
    why = next(line for line in text.splitlines() if line.startswith("  Why it waited: "))
    assert "List-" not in why
    assert "Precedence" not in why
    assert "newsletter" in why or "mailing list" in why, why
    assert OTHER_MAIL not in text  # no account group, so no "Other mail" heading
    assert "No account" not in text
