"""Filing into shared account folders, with three colleagues each behind their own proxy.

The real Dovecot's public namespace (``Public/``, rights from a global ACL file) holds the
account folders. alice, bob and carol are fresh users of the test server, each with their own
config and state; all three configs name the same customer account. The team's own domain is
``team.example``; the customer is ``acme.example`` plus one contact on gmail.
"""

from __future__ import annotations

import json
import re
import shlex
import smtplib
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.mailfactory import render
from tests.testbed.dovecot import READ_ONLY, Dovecot, DovecotError
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, fetch_fields, quiet_batches, triage_proxy, wait_until

TEAM_DOMAIN = "team.example"
HOLD = ("INBOX", "Later", "Later/Bulk")


def _id() -> str:
    return f"<{uuid.uuid4().hex}@test.example>"


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Member:
    """One colleague: a user of the test server, a config, a proxy."""

    def __init__(self, dovecot: Dovecot, directory: Path, account: str, accounts: str) -> None:
        self.dovecot = dovecot
        self.user, self.password = dovecot.new_user()
        self.address = f"{self.user}@{TEAM_DOMAIN}"
        self.directory = directory
        self.account = account
        self.accounts = accounts
        self.proxy: ProxyProcess | None = None
        self.write_config()

    def write_config(self, accounts: str | None = None) -> None:
        self.accounts = accounts or self.accounts
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "config.toml"
        password = _toml(f"printf %s {shlex.quote(self.password)}")
        self.config.write_text(
            f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{self.directory / "state"}"

[[login]]
username = "{self.user}"
password_command = {password}
upstream_imap = "imap://127.0.0.1:{self.dovecot.imap_port}"
upstream_smtp = "smtp+starttls://localhost:{self.dovecot.submission_port}"
cafile = "{self.dovecot.ca_file}"

[web]
enabled = false

[triage]
vip = ["boss@acme.example"]
{quiet_batches()}
{self.accounts}
""",
            encoding="utf-8",
        )

    def start(self) -> ProxyProcess:
        self.proxy = triage_proxy(self.config)
        return self.proxy

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None

    def flags(self, mid: str) -> set[str]:
        """The keywords of the message with this Message-ID wherever triage put it."""
        for mailbox in HOLD:
            for record in fetch_fields(self.dovecot, self.user, mailbox, "flags hdr.message-id"):
                if record.get("hdr.message-id") == mid:
                    return set(record.get("flags", "").split())
        return set()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "commsproxy", *args, "--config", str(self.config)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def send(self, message: bytes, recipients: list[str]) -> None:
        assert self.proxy is not None
        with smtplib.SMTP("127.0.0.1", self.proxy.smtp_port, timeout=30) as smtp:
            smtp.login(self.user, self.password)
            smtp.sendmail(self.address, recipients, message)


def accounts_table(name: str, *, scan: int = 1, extra: str = "") -> str:
    return f"""
[accounts]
internal_domains = ["{TEAM_DOMAIN}"]
team_scan = {scan}
{extra}
[accounts.acme]
name = "{name}"
domains = ["acme.example"]
addresses = ["acme.buyer@gmail.com"]
"""


def folder_ids(dovecot: Dovecot, user: str, folder: str) -> Counter[str]:
    """Message-ID -> copies in an account folder (read by ``user``)."""
    return census(dovecot, user, (folder,))


def deliver_to(dovecot: Dovecot, users: list[str], *messages: bytes) -> None:
    """Deliver to several users, as a CC'd message arrives (one recipient per transaction:
    smtplib reads only one of LMTP's per-recipient replies)."""
    with smtplib.LMTP(dovecot.host, dovecot.lmtp_port, timeout=60) as lmtp:
        for message in messages:
            for user in users:
                lmtp.sendmail("ceo@acme.example", [f"{user}@localhost"], message)


def customer_mail(mid: str, team: list[Member], *, sender: str = "ceo@acme.example") -> bytes:
    headers = {
        "From": f"Customer <{sender}>",
        "To": team[0].address,
        "Cc": ", ".join(m.address for m in team[1:]),
        "Subject": "Question about our order",
        "Message-ID": mid,
    }
    return render(headers, "Could you tell us when the order ships? Thanks.")


@pytest.fixture(scope="module")
def team(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Member]]:
    account = f"Acme {uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("team")
    members = [
        Member(dovecot, base / name, account, accounts_table(account))
        for name in ("alice", "bob", "carol")
    ]
    team_users = ", ".join(f'"{m.user}"' for m in members)
    for member in members:  # new account folders are shared with the team by ACL
        member.write_config(accounts_table(account, extra=f"share_with = [{team_users}]"))
    try:
        for member in members:
            member.start()
        yield members
    finally:
        for member in members:
            member.stop()


def _folder(member: Member) -> str:
    return f"Public/Accounts/{member.account}"


def test_a_customer_message_cc_to_three_colleagues_is_filed_once(
    dovecot: Dovecot, team: list[Member]
) -> None:
    mid = _id()
    deliver_to(dovecot, [m.user for m in team], customer_mail(mid, team))
    assert wait_until(lambda: all("$Filed" in m.flags(mid) for m in team), 20)
    assert folder_ids(dovecot, team[0].user, _folder(team[0]))[mid] == 1
    outcomes = []
    for member in team:  # each colleague still has their own copy, triaged as usual
        assert census(dovecot, member.user, HOLD)[mid] == 1
        explained = json.loads(member.cli("explain", mid, "--json").stdout)
        outcomes += [(f["account"], f["outcome"]) for f in explained["filings"]]
    assert len(outcomes) == 3  # one filing on record per colleague, all to the same account
    assert {a for a, _ in outcomes} == {team[0].account}
    assert {o for _, o in outcomes} <= {"copied", "present"}


def test_mail_from_unknown_free_mail_and_internal_mail_is_not_filed(
    dovecot: Dovecot, team: list[Member]
) -> None:
    stranger, internal, listed = _id(), _id(), _id()
    deliver_to(dovecot, [team[0].user], customer_mail(stranger, team, sender="x@gmail.com"))
    deliver_to(dovecot, [team[0].user], customer_mail(internal, team, sender=team[1].address))
    deliver_to(dovecot, [team[0].user], customer_mail(listed, team, sender="acme.buyer@gmail.com"))
    assert wait_until(lambda: "$Filed" in team[0].flags(listed), 20)
    assert wait_until(lambda: "$Triaged" in team[0].flags(internal), 20)
    ids = folder_ids(dovecot, team[0].user, _folder(team[0]))
    assert (ids[stranger], ids[internal], ids[listed]) == (0, 0, 1)
    assert "$Filed" not in team[0].flags(stranger) | team[0].flags(internal)


def test_sent_mail_is_filed_and_delivered_and_answers_show_to_the_team(
    dovecot: Dovecot, team: list[Member]
) -> None:
    alice, bob, carol = team
    question = _id()
    deliver_to(dovecot, [m.user for m in team], customer_mail(question, team))
    assert wait_until(lambda: all("$Filed" in m.flags(question) for m in team), 20)
    reply = _id()
    headers = {
        "From": alice.address,
        "To": "ceo@acme.example",
        "Cc": f"{bob.user}@localhost",
        "Subject": "Re: Question about our order",
        "Message-ID": reply,
        "In-Reply-To": question,
        "References": question,
    }
    alice.send(
        render(headers, "It ships on Monday."), ["ceo@acme.example", f"{bob.user}@localhost"]
    )
    folder = _folder(alice)
    assert wait_until(lambda: folder_ids(dovecot, alice.user, folder)[reply] == 1, 20)
    assert any(m.content.find(reply.encode()) >= 0 for m in dovecot.relay.captured())
    assert census(dovecot, bob.user, HOLD)[reply] == 1  # the colleague got it too
    filed = [
        r
        for r in fetch_fields(dovecot, alice.user, folder, "flags hdr.message-id")
        if r.get("hdr.message-id") == reply
    ]
    assert {"\\Seen", "$Sent"} <= set(filed[0]["flags"].split())
    # carol and bob learn that alice answered; alice's own copy is not marked.
    assert wait_until(lambda: "$Answered-By-Team" in carol.flags(question), 20)
    assert wait_until(lambda: "$Answered-By-Team" in bob.flags(question), 20)
    assert "$Answered-By-Team" not in alice.flags(question)
    time.sleep(0.5)  # bob's proxy also files the CC it received: still one copy
    assert folder_ids(dovecot, alice.user, folder)[reply] == 1


def test_one_thousand_messages_filed_by_three_proxies_at_once(
    dovecot: Dovecot, team: list[Member]
) -> None:
    ids = [_id() for _ in range(1000)]
    messages = [customer_mail(mid, team) for mid in ids]
    # Each colleague's copies arrive on their own connection, so the proxies race.
    with ThreadPoolExecutor(3) as pool:
        for done in [pool.submit(deliver_to, dovecot, [m.user], *messages) for m in team]:
            done.result()
    folder = _folder(team[0])

    def filed_once() -> bool:
        # Two proxies copying at the same instant both see two copies a moment later and
        # agree on which one stays: wait for that, then the folder holds each message once.
        counts = folder_ids(dovecot, team[0].user, folder)
        return all(counts[mid] == 1 for mid in ids)

    assert wait_until(filed_once, 240)
    for member in team:  # every colleague's own copy is still there, once (after triage)

        def kept_once(user: str = member.user) -> bool:
            kept = census(dovecot, user, HOLD)
            return all(kept[mid] == 1 for mid in ids)

        assert wait_until(kept_once, 120)


def test_renaming_an_account_renames_its_folder(dovecot: Dovecot, tmp_path: Path) -> None:
    old, new = f"Acme {uuid.uuid4().hex[:8]}", f"Acme Renamed {uuid.uuid4().hex[:8]}"
    member = Member(dovecot, tmp_path / "alice", old, accounts_table(old))
    first = _id()
    try:
        member.start()
        deliver_to(dovecot, [member.user], customer_mail(first, [member]))
        assert wait_until(lambda: "$Filed" in member.flags(first), 20)
        member.stop()
        member.write_config(accounts_table(new))
        member.start()
        second = _id()
        deliver_to(dovecot, [member.user], customer_mail(second, [member]))
        assert wait_until(lambda: "$Filed" in member.flags(second), 20)
    finally:
        member.stop()
    renamed = folder_ids(dovecot, member.user, f"Public/Accounts/{new}")
    assert (renamed[first], renamed[second]) == (1, 1)
    with pytest.raises(DovecotError):
        dovecot.doveadm(
            "mailbox", "status", "-u", member.user, "messages", f"Public/Accounts/{old}"
        )


def test_a_folder_without_insert_rights_is_logged_and_mail_is_kept(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    name = f"Locked {uuid.uuid4().hex[:8]}"
    accounts = accounts_table(name, extra=f'root = "{READ_ONLY}"')
    member = Member(dovecot, tmp_path / "alice", name, accounts)
    folder = f"{READ_ONLY}/{name}"  # the server's ACL: anyone may create and read, not add
    mid = _id()
    try:
        proxy = member.start()
        deliver_to(dovecot, [member.user], customer_mail(mid, [member]))
        assert wait_until(lambda: "$Triaged" in member.flags(mid), 20)
        assert proxy.wait_for_log(rf"cannot file 1 message\(s\) into {folder}: .*NO", 10), (
            proxy.log_text()
        )
    finally:
        member.stop()
    assert census(dovecot, member.user, HOLD)[mid] == 1  # delivered and triaged as usual
    assert "$Filed" not in member.flags(mid)
    assert folder_ids(dovecot, member.user, folder)[mid] == 0


def test_accounts_list_shows_folders_and_counts(dovecot: Dovecot, team: list[Member]) -> None:
    alice = team[0]
    mid = _id()
    deliver_to(dovecot, [alice.user], customer_mail(mid, team))
    assert wait_until(lambda: "$Filed" in alice.flags(mid), 20)
    result = alice.cli("accounts", "list", "--json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["root"] == "Public/Accounts"
    row = next(r for r in listed["accounts"] if r["key"] == "acme")
    assert row["folder"] == _folder(alice)
    assert row["messages"] == sum(folder_ids(dovecot, alice.user, _folder(alice)).values())
    assert row["domains"] == ["acme.example"]


def test_a_new_account_folder_is_shared_with_the_team(dovecot: Dovecot, team: list[Member]) -> None:
    mid = _id()
    deliver_to(dovecot, [team[0].user], customer_mail(mid, team))
    assert wait_until(lambda: "$Filed" in team[0].flags(mid), 20)
    acl = dovecot.doveadm("acl", "get", "-u", team[0].user, _folder(team[0]))
    rights = {line.split()[0]: set(line.split()[1:]) for line in acl.splitlines()[1:] if line}
    for member in team:  # share_rights "lrwstipekx", as doveadm names them
        assert {"lookup", "read", "insert", "write", "write-seen"} <= rights[f"user={member.user}"]


def test_same_message_id_with_another_body_is_filed_and_a_true_duplicate_is_not(
    dovecot: Dovecot, team: list[Member]
) -> None:
    """Received mail: the server's copy is compared by Message-ID and body, both logged."""
    alice = team[0]
    assert alice.proxy is not None
    folder = _folder(alice)
    mid = _id()
    first = customer_mail(mid, [alice])
    deliver_to(dovecot, [alice.user], first)
    assert wait_until(lambda: folder_ids(dovecot, alice.user, folder)[mid] == 1, 20)
    # The very same message again (delivered twice): not filed twice.
    deliver_to(dovecot, [alice.user], first)
    pattern = rf"uid \d+ {re.escape(mid)} is in {re.escape(folder)} already \(same body\)"
    assert alice.proxy.wait_for_log(pattern, 20), alice.proxy.log_text()
    # Another message that reuses the Message-ID: filed too.
    headers = {"From": "Customer <ceo@acme.example>", "To": alice.address, "Message-ID": mid,
               "Subject": "A different message, same Message-ID"}  # fmt: skip
    deliver_to(dovecot, [alice.user], render(headers, "Another question altogether."))
    assert wait_until(lambda: folder_ids(dovecot, alice.user, folder)[mid] == 2, 20)
    assert alice.proxy.wait_for_log(rf"Message-ID {re.escape(mid)} of a message in .* body", 5)
    assert census(dovecot, alice.user, HOLD)[mid] == 3  # all three kept in alice's own mail
    time.sleep(0.5)  # the others' proxies look again after copying: nothing removed
    assert folder_ids(dovecot, alice.user, folder)[mid] == 2


def test_sent_mail_reusing_a_message_id_is_filed_and_a_resend_is_not(
    dovecot: Dovecot, team: list[Member]
) -> None:
    """Sent mail (the queue's APPEND): the same comparison; the null sender works too."""
    alice = team[0]
    assert alice.proxy is not None
    folder = _folder(alice)
    mid = _id()
    headers = {"From": alice.address, "To": "ceo@acme.example", "Subject": "Our offer",
               "Message-ID": mid}  # fmt: skip
    offer = render(headers, "Here is our offer.")
    alice.send(offer, ["ceo@acme.example"])
    assert wait_until(lambda: folder_ids(dovecot, alice.user, folder)[mid] == 1, 20)
    alice.send(offer, ["ceo@acme.example"])  # sent again, unchanged
    assert alice.proxy.wait_for_log(rf"{re.escape(mid)} is in .* already \(same body\)", 20)
    # A read receipt or bounce from the same program, with the null sender and the same ID.
    receipt = render({**headers, "Subject": "Read: Our offer"}, "Your message was read.")
    with smtplib.SMTP("127.0.0.1", alice.proxy.smtp_port, timeout=30) as smtp:
        smtp.login(alice.user, alice.password)
        assert smtp.sendmail("", ["ceo@acme.example"], receipt) == {}
    assert wait_until(lambda: folder_ids(dovecot, alice.user, folder)[mid] == 2, 20)
    assert alice.proxy.wait_for_log(rf"{re.escape(mid)} is the Message-ID of a message", 5)
    assert "after-send hook failed" not in alice.proxy.log_text()
    assert any(m.mail_from in ("", "<>") for m in dovecot.relay.captured())
