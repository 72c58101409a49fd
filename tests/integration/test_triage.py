"""Triage against the real Dovecot: what stays, what is held, releases, rescues and restarts.

Each test takes a fresh user and its own config and state directory, and runs
``commsproxy run`` as a process. Labels are made predictable by the mail itself: a VIP sender
is urgent, a newsletter (list headers, ``Precedence: bulk``, ``noreply@``) is bulk and a reply
in a thread is normal under the bundled model. Batches are released 12 hours from now, so no
scheduled release happens unless a test records an old one in the state store.
"""

from __future__ import annotations

import base64
import imaplib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.triage.state_store import FILENAME, StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import (
    census,
    fetch_fields,
    flags_by_id,
    quiet_batches,
    triage_proxy,
    wait_until,
    where,
    write_triage_config,
)

HELD = ("Later", "Later/Bulk")
_DECISION = re.compile(r"triage\[[^\]]+\]: uid (\d+) (urgent|normal|bulk)")


# --- mail -----------------------------------------------------------------------------------


def _id() -> str:
    return f"<{uuid.uuid4().hex}@test.example>"


def vip_mail(mid: str) -> bytes:
    headers = {"From": "Boss <boss@example.com>", "To": "me@example.com", "Message-ID": mid}
    return render(headers | {"Subject": "contract today"}, "Please call me about the contract.")


def newsletter(mid: str) -> bytes:
    headers = {
        "From": "News <noreply@news.example.org>",
        "To": "me@example.com",
        "Subject": "Weekly digest",
        "Message-ID": mid,
        "List-Id": "<weekly.news.example.org>",
        "List-Unsubscribe": "<mailto:leave@news.example.org>",
        "Precedence": "bulk",
    }
    return render(headers, "This week: articles and events. Unsubscribe at any time.")


def thread_reply(mid: str) -> bytes:
    """A reply in a thread from a person: normal (held in Later) under the bundled model."""
    headers = {
        "From": "Anna Smith <anna@example.org>",
        "To": "me@example.com",
        "Subject": "Re: notes from the meeting",
        "Message-ID": mid,
        "In-Reply-To": "<earlier@example.org>",
        "References": "<earlier@example.org>",
        "Date": "Sun, 22 Nov 2026 10:00:00 +0000",
    }
    return render(headers, "Thanks, I read your notes. Let's discuss the plan tomorrow.\r\nAnna")


# --- the setup ------------------------------------------------------------------------------


class Account:
    """A fresh user with its own config directory, and the proxies started for it."""

    def __init__(self, dovecot: Dovecot, directory: Path) -> None:
        self.dovecot = dovecot
        self.user, self.password = dovecot.new_user()
        self.directory = directory
        self.state_dir = directory / "state"
        self.proxies: list[ProxyProcess] = []
        self.config = self.write_config()

    def write_config(self, *, batches: str | None = None, upstream: str | None = None) -> Path:
        """(Re)write the config: quiet batches unless given, the test Dovecot unless given."""
        self.config = write_triage_config(
            self.dovecot,
            self.user,
            self.password,
            self.directory,
            batches=batches or quiet_batches(),
            upstream=upstream,
        )
        return self.config

    def start(self, *args: str) -> ProxyProcess:
        proxy = triage_proxy(self.config, *args)
        self.proxies.append(proxy)
        return proxy

    def deliver(self, message: bytes) -> None:
        self.dovecot.deliver(self.user, message)

    def imap(self) -> imaplib.IMAP4:
        """A connection straight to Dovecot, behind commsproxy's back."""
        conn = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port, timeout=30)
        conn.login(self.user, self.password)
        return conn

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "commsproxy", *args, "--config", str(self.config)],
            capture_output=True,
            text=True,
            timeout=90,
            env={**os.environ, "COMMSPROXY_CONFIG": "/nonexistent/commsproxy.toml"},
            check=False,
        )

    def where(self, mid: str) -> str | None:
        return where(self.dovecot, self.user).get(mid)

    def flags(self, mid: str) -> frozenset[str]:
        return flags_by_id(self.dovecot, self.user)[mid][1]


@pytest.fixture
def account(dovecot: Dovecot, tmp_path: Path) -> Iterator[Account]:
    made = Account(dovecot, tmp_path / "commsproxy")
    yield made
    for proxy in made.proxies:
        proxy.stop()
    for proxy in made.proxies:
        assert "Traceback" not in proxy.log_text(), proxy.log_text()


def decisions(proxy: ProxyProcess) -> list[tuple[int, str]]:
    """(uid, label) of every decision the proxy logged, in order."""
    return [
        (int(m.group(1)), m.group(2)) for m in map(_DECISION.search, proxy.lines()) if m is not None
    ]


def wait_decided(proxy: ProxyProcess, count: int, timeout: float = 15.0) -> None:
    """Wait until ``count`` decisions are logged (the messages are tagged right after)."""
    assert wait_until(lambda: len(decisions(proxy)) >= count, timeout), proxy.log_text()


def wait_in(account: Account, mid: str, mailboxes: tuple[str, ...], timeout: float = 15.0) -> str:
    """Wait until ``mid`` is in one of ``mailboxes``; returns which."""
    assert wait_until(lambda: account.where(mid) in mailboxes, timeout), (
        f"{mid} is in {account.where(mid)}, expected one of {mailboxes}"
    )
    found = account.where(mid)
    assert found is not None
    return found


def uid_of(conn: imaplib.IMAP4, mid: str) -> str:
    """The UID of ``mid`` in the selected mailbox (exactly one copy expected)."""
    typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", mid)
    assert typ == "OK", data
    uids = (data[0] or b"").decode().split()
    assert len(uids) == 1, uids
    return uids[0]


def internaldate(conn: imaplib.IMAP4, mailbox: str, mid: str) -> float:
    conn.select(f'"{mailbox}"')
    typ, data = conn.uid("FETCH", uid_of(conn, mid), "(INTERNALDATE)")
    assert typ == "OK", data
    assert isinstance(data[0], bytes), data
    parsed = imaplib.Internaldate2tuple(data[0])
    assert parsed is not None, data
    return time.mktime(parsed)


def digests(account: Account) -> list[str]:
    """Subjects of the digest messages in INBOX."""
    return [
        record.get("hdr.subject", "")
        for record in fetch_fields(account.dovecot, account.user, "INBOX", "hdr.subject flags")
        if "$Digest" in record.get("flags", "")
    ]


# --- tests ----------------------------------------------------------------------------------


def test_vip_stays_and_newsletter_is_held_with_keywords(account: Account) -> None:
    proxy = account.start()
    vip, news = _id(), _id()
    account.deliver(vip_mail(vip))
    account.deliver(newsletter(news))
    wait_decided(proxy, 2)
    held_in = wait_in(account, news, HELD)

    assert account.where(vip) == "INBOX"
    assert {"$Triaged", "$Urgent", "$label1"} <= account.flags(vip)
    keyword = "$Bulk" if held_in == "Later/Bulk" else "$Later"
    assert {"$Triaged", keyword} <= account.flags(news)
    assert all(
        "\\Seen" not in flags for _, flags in flags_by_id(account.dovecot, account.user).values()
    )
    subscribed = account.dovecot.doveadm("mailbox", "list", "-s", "-u", account.user).split()
    assert {"Later", "Later/Bulk"} <= set(subscribed)
    assert census(account.dovecot, account.user) == {vip: 1, news: 1}


def test_already_read_mail_is_tagged_but_left_in_inbox(account: Account) -> None:
    """New mail that arrives read (another device read it, or it was appended read)."""
    proxy = account.start()
    assert proxy.wait_for_log("watching INBOX", 20), proxy.log_text()
    news = _id()
    conn = account.imap()
    typ, data = conn.append("INBOX", "(\\Seen)", None, newsletter(news))
    assert typ == "OK", data
    conn.logout()
    wait_decided(proxy, 1)
    assert wait_until(lambda: "$Triaged" in account.flags(news)), account.flags(news)
    assert {"$Triaged", "\\Seen"} <= account.flags(news)
    assert account.flags(news) & {"$Bulk", "$Later"}
    assert "already read: left in INBOX" in proxy.log_text()
    proxy.stop()
    assert account.where(news) == "INBOX"


def test_dry_run_tags_without_moving(account: Account) -> None:
    proxy = account.start("--dry-run")
    assert proxy.wait_for_log("watching INBOX", 20), proxy.log_text()
    vip, news = _id(), _id()
    account.deliver(vip_mail(vip))
    account.deliver(newsletter(news))
    wait_decided(proxy, 2)
    assert wait_until(lambda: "$Triaged" in account.flags(news)), account.flags(news)
    assert {"$Triaged", "$Urgent"} <= account.flags(vip)
    assert account.flags(news) & {"$Bulk", "$Later"}
    proxy.stop()

    assert where(account.dovecot, account.user) == {vip: "INBOX", news: "INBOX"}
    assert re.search(r"uid \d+ bulk .*would be held in Later/Bulk", proxy.log_text()), (
        proxy.log_text()
    )
    assert "held 1 message" not in proxy.log_text()
    assert "$NotHeld" in account.flags(news)

    # A real run after the state store is lost: the newsletter the dry run tagged is neither
    # triaged again nor mistaken for mail the user brought back from a hold mailbox.
    (account.state_dir / FILENAME).unlink()
    real = account.start()
    later = _id()
    account.deliver(vip_mail(later))
    assert wait_until(lambda: "$Triaged" in account.flags(later), 20)
    assert "came back from a hold mailbox" not in real.log_text()
    assert account.where(news) == "INBOX"


def test_release_now_while_running(account: Account) -> None:
    proxy = account.start()
    news = _id()
    account.deliver(newsletter(news))
    wait_decided(proxy, 1)
    wait_in(account, news, HELD)

    result = account.cli("release", "--now")
    assert result.returncode == 0, result.stderr
    assert "released 1 message" in result.stdout, result.stdout
    assert f"released by commsproxy run (pid {proxy.pid})" in result.stdout, result.stdout
    assert account.where(news) == "INBOX"
    assert "$Released" in account.flags(news)
    assert any("released" in subject for subject in digests(account)), digests(account)

    later = _id()  # a pass after the release: the released message must not be held again
    account.deliver(vip_mail(later))
    wait_decided(proxy, 2)
    assert wait_until(lambda: "$Triaged" in account.flags(later))
    assert account.where(news) == "INBOX"
    assert len(decisions(proxy)) == 2, decisions(proxy)
    counts = census(account.dovecot, account.user)
    assert counts[news] == 1
    assert counts[later] == 1


def test_catch_up_release_at_start_and_fresh_store(account: Account) -> None:
    proxy = account.start()
    vip, news = _id(), _id()
    account.deliver(vip_mail(vip))
    account.deliver(newsletter(news))
    wait_decided(proxy, 2)
    wait_in(account, news, HELD)
    proxy.stop()

    # The last scheduled release (MAX(scheduled)) becomes 8 days old: a release is missed.
    long_ago = datetime.now(UTC) - timedelta(days=8)
    with sqlite3.connect(account.state_dir / FILENAME) as db:
        db.execute("DELETE FROM releases")
    db.close()
    with StateStore.open(account.state_dir) as store:
        for batch in ("later", "bulk"):
            release = store.start_release(account.user, batch, long_ago, long_ago)
            store.finish_release(release, 0, long_ago)

    proxy = account.start()
    assert re.search(r"released 1 message\(s\) from bulk \(scheduled ", proxy.log_text()), (
        proxy.log_text()
    )
    assert account.where(news) == "INBOX"
    assert "$Released" in account.flags(news)
    assert decisions(proxy) == []
    proxy.stop()
    before = census(account.dovecot, account.user)
    keywords = flags_by_id(account.dovecot, account.user)
    assert before[vip] == before[news] == 1

    # A lost store (new cursor, no decisions, no releases) triages nothing twice.
    for path in account.state_dir.glob(FILENAME + "*"):
        path.unlink()
    proxy = account.start()
    extra = _id()
    account.deliver(vip_mail(extra))
    wait_decided(proxy, 1)
    assert wait_until(lambda: "$Triaged" in account.flags(extra))
    proxy.stop()
    assert len(decisions(proxy)) == 1, decisions(proxy)
    after = census(account.dovecot, account.user)
    assert after - Counter({extra: 1}) == before
    assert {k: v for k, v in flags_by_id(account.dovecot, account.user).items() if k != extra} == (
        keywords
    )


def test_release_now_without_run(account: Account) -> None:
    proxy = account.start()
    news, reply = _id(), _id()
    account.deliver(newsletter(news))
    account.deliver(thread_reply(reply))
    wait_decided(proxy, 2)
    wait_in(account, news, HELD)
    wait_in(account, reply, HELD)
    proxy.stop()

    result = account.cli("release", "--now")
    assert result.returncode == 0, result.stderr
    assert "released" in result.stdout
    assert "released by this command (commsproxy run is not running)" in result.stdout
    assert account.where(news) == account.where(reply) == "INBOX"
    assert "$Released" in account.flags(news)
    assert "$Released" in account.flags(reply)
    assert digests(account)
    counts = census(account.dovecot, account.user)
    assert counts[news] == counts[reply] == 1


def test_reappend_release_gives_fresh_arrival_date(account: Account) -> None:
    account.write_config(batches=quiet_batches(later_reappend=True))
    proxy = account.start()
    reply, news = _id(), _id()
    old = imaplib.Time2Internaldate(datetime(2020, 1, 2, 12, 0, tzinfo=UTC))
    conn = account.imap()
    conn.append("INBOX", None, old, thread_reply(reply))
    conn.append("INBOX", None, old, newsletter(news))
    wait_decided(proxy, 2)
    assert wait_in(account, reply, HELD) == "Later", "the bundled model no longer says normal"
    wait_in(account, news, HELD)
    original = internaldate(conn, "Later", reply)

    started = time.time()
    result = account.cli("release", "--now")
    assert result.returncode == 0, result.stderr
    fresh = internaldate(conn, "INBOX", reply)
    assert fresh >= started - 2 > original
    assert internaldate(conn, "INBOX", news) == original  # moved, not re-appended
    assert "$Released" in account.flags(reply)
    conn.logout()
    counts = census(account.dovecot, account.user)
    assert counts[reply] == counts[news] == 1
    assert account.dovecot.message_count(account.user, "Later") == 0


def test_message_without_id_and_30_mb_message(account: Account) -> None:
    proxy = account.start()
    tag = uuid.uuid4().hex
    bare = render(
        {"From": "Someone <someone@example.net>", "To": "me@example.com", "Subject": f"bare {tag}"},
        "No Message-ID here.",
    )
    big_id = _id()
    attachment = base64.encodebytes(os.urandom(22 * 1024 * 1024)).replace(b"\n", b"\r\n")
    big = (
        render(
            {
                "From": "Someone <someone@example.net>",
                "To": "me@example.com",
                "Subject": "the big file",
                "Message-ID": big_id,
                "MIME-Version": "1.0",
                "Content-Type": 'multipart/mixed; boundary="b1"',
            },
            "--b1\r\nContent-Type: text/plain\r\n\r\nThe file is attached.\r\n--b1\r\n"
            "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="big.bin"\r\n',
        )
        + attachment
        + b"\r\n--b1--\r\n"
    )
    assert len(big) > 30_000_000
    account.deliver(bare)
    account.deliver(big)
    wait_decided(proxy, 2, timeout=60)
    assert wait_until(lambda: "$Triaged" in account.flags(big_id), 30)

    places = [
        record.get("hdr.subject")
        for mailbox in ("INBOX", *HELD)
        for record in fetch_fields(account.dovecot, account.user, mailbox, "hdr.subject")
    ]
    assert places.count(f"bare {tag}") == 1
    assert census(account.dovecot, account.user)[big_id] == 1
    proxy.stop()
    log = proxy.log_text()
    assert not re.search(r"Traceback| ERROR | WARNING ", log), log


def test_demoting_and_flagging_are_recorded_as_corrections(account: Account) -> None:
    """Urgent mail dragged into Later, and held mail flagged: both teach the next train."""
    proxy = account.start()
    urgent, held = _id(), _id()
    account.deliver(vip_mail(urgent))
    account.deliver(thread_reply(held))
    wait_decided(proxy, 2)
    held_in = wait_in(account, held, HELD)
    assert account.where(urgent) == "INBOX"

    conn = account.imap()
    conn.select("INBOX")
    typ, data = conn.uid("MOVE", uid_of(conn, urgent), "Later")
    assert typ == "OK", data
    conn.select(f'"{held_in}"')
    typ, data = conn.uid("STORE", uid_of(conn, held), "+FLAGS", "(\\Flagged)")
    assert typ == "OK", data
    conn.logout()

    def recorded() -> list[tuple[str | None, str, str, str | None]]:
        with StateStore.open(account.state_dir) as store:
            found = store.corrections(account.user)
        return sorted((c.message_id, c.kind, c.label, c.previous) for c in found)

    expected = sorted(
        [(urgent.strip("<>"), "demote", "normal", "urgent"),
         (held.strip("<>"), "flag", "urgent", "normal" if held_in == "Later" else "bulk")]
    )  # fmt: skip
    assert wait_until(lambda: recorded() == expected, 30), recorded()
    assert "$Later" in account.flags(urgent)  # recorded once; a drag back reads as a rescue
    assert account.where(urgent) == "Later"  # the user's move stands


def test_rescued_message_stays_in_inbox(account: Account) -> None:
    proxy = account.start()
    reply = _id()
    account.deliver(thread_reply(reply))
    wait_decided(proxy, 1)
    held_in = wait_in(account, reply, HELD)

    conn = account.imap()
    conn.select(f'"{held_in}"')
    typ, data = conn.uid("MOVE", uid_of(conn, reply), "INBOX")
    assert typ == "OK", data
    conn.logout()
    assert proxy.wait_for_log("came back from a hold mailbox", 15), proxy.log_text()

    later = _id()  # another pass happens after the rescue
    account.deliver(vip_mail(later))
    wait_decided(proxy, 2)
    assert wait_until(lambda: "$Triaged" in account.flags(later))
    assert account.where(reply) == "INBOX"
    with StateStore.open(account.state_dir) as store:
        corrections = store.corrections(account.user)
    assert [(c.kind, c.label) for c in corrections] == [("rescue", "urgent")]
    assert corrections[0].previous in ("normal", "bulk")
    assert corrections[0].message_id == reply.strip("<>")  # usable for training
    assert corrections[0].sender == "anna@example.org"
    result = account.cli("explain", reply)
    assert result.returncode == 0, result.stderr
    assert "by rescue: urgent" in result.stdout, result.stdout


def test_status_and_explain(account: Account) -> None:
    proxy = account.start()
    vip, news = _id(), _id()
    account.deliver(vip_mail(vip))
    account.deliver(newsletter(news))
    wait_decided(proxy, 2)
    wait_in(account, news, HELD)

    result = account.cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["running"] is True
    (login,) = status["logins"]
    assert login["login"] == account.user
    batches = {batch["name"]: batch for batch in login["batches"]}
    assert set(batches) == {"later", "bulk"}
    for batch in batches.values():
        assert datetime.fromisoformat(batch["next_release"]) > datetime.now(UTC)
    recent = {decision["message_id"]: decision for decision in login["recent"]}
    assert recent[vip.strip("<>")]["label"] == "urgent"
    assert recent[news.strip("<>")]["held"] is True

    result = account.cli("explain", vip)
    assert result.returncode == 0, result.stderr
    assert "why: VIP sender (boss@example.com)" in result.stdout
    result = account.cli("explain", news)
    assert result.returncode == 0, result.stderr
    assert "held in batch" in result.stdout
    assert "why: bulk (" in result.stdout
    assert re.search(r"held: (has List-|Precedence: bulk)", result.stdout), result.stdout


def test_unreachable_upstream_is_retried_with_reason(account: Account) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    account.write_config(upstream=f"imap://127.0.0.1:{port}")
    proxy = ProxyProcess(["--config", str(account.config)]).start()
    account.proxies.append(proxy)
    pattern = rf"triage\[{account.user}\]: upstream 127\.0\.0\.1:{port} unreachable: .*reconnecting"
    assert proxy.wait_for_log(pattern, 15), proxy.log_text()
    assert proxy.returncode is None
    assert proxy.stop() == 0


# --- stop-holding ---------------------------------------------------------------------------


def test_stop_holding_while_running_then_start_again(account: Account) -> None:
    proxy = account.start()
    news, reply = _id(), _id()
    account.deliver(newsletter(news))
    account.deliver(thread_reply(reply))
    wait_decided(proxy, 2)
    wait_in(account, news, HELD)
    wait_in(account, reply, HELD)

    result = account.cli("stop-holding")
    assert result.returncode == 0, result.stderr
    assert f"released by commsproxy run (pid {proxy.pid})" in result.stdout, result.stdout
    assert "holding stopped: new mail stays in INBOX" in result.stdout
    assert account.where(news) == account.where(reply) == "INBOX"
    assert "$Released" in account.flags(news)

    # New mail is decided and tagged, and stays in INBOX.
    fresh = _id()
    account.deliver(newsletter(fresh))
    wait_decided(proxy, 3)
    assert wait_until(lambda: "$Triaged" in account.flags(fresh))
    assert "$NotHeld" in account.flags(fresh)
    assert proxy.wait_for_log("holding stopped: left in INBOX")
    assert account.where(fresh) == "INBOX"

    # Asking again changes nothing and says since when.
    again = account.cli("stop-holding")
    assert again.returncode == 0, again.stderr
    assert "holding stopped (since " in again.stdout

    result = account.cli("start-holding")
    assert result.returncode == 0, result.stderr
    assert "holding again" in result.stdout
    later = _id()
    account.deliver(newsletter(later))
    wait_decided(proxy, 4)
    wait_in(account, later, HELD)
    assert account.where(fresh) == "INBOX"  # not held after the fact, not taken as a rescue
    assert "came back from a hold mailbox" not in proxy.log_text()
    counts = census(account.dovecot, account.user)
    assert [counts[mid] for mid in (news, reply, fresh, later)] == [1, 1, 1, 1]


def test_stop_holding_without_run_lasts_across_restarts(account: Account) -> None:
    proxy = account.start()
    news = _id()
    account.deliver(newsletter(news))
    wait_decided(proxy, 1)
    wait_in(account, news, HELD)
    proxy.stop()

    result = account.cli("stop-holding")
    assert result.returncode == 0, result.stderr
    assert "released by this command (commsproxy run is not running)" in result.stdout
    assert "bulk (Later/Bulk): released 1 message to INBOX" in result.stdout
    assert account.where(news) == "INBOX"

    proxy = account.start()
    fresh = _id()
    account.deliver(newsletter(fresh))
    wait_decided(proxy, 1)
    assert wait_until(lambda: "$Triaged" in account.flags(fresh))
    proxy.stop()
    assert account.where(fresh) == "INBOX"
    counts = census(account.dovecot, account.user)
    assert [counts[mid] for mid in (news, fresh)] == [1, 1]
