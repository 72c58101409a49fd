"""Real clients through a triaging proxy: urgent mail comes at once, held mail waits its batch.

mbsync, offlineimap and neomutt each talk to a proxy with triage on (VIP ``boss@example.com``).
Mail from the VIP must reach the client's INBOX at once. A newsletter and an ordinary reply in a
thread are held on the server (``Later``, ``Later/Bulk``) and must never show in the client's
INBOX, not even when the client syncs or looks right after delivery, before triage has visibly
acted: closing that race is the gate's job. After ``commsproxy release --now`` the next sync
brings the held mail in, and nothing a two-way client does may lose or duplicate a message.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.helpers import (
    TmuxPane,
    client_env,
    maildir_messages,
    require_program,
    run_client,
    token,
    upstream_messages,
    wait_until,
    write_mbsync_config,
    write_muttrc,
    write_offlineimap_config,
)
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, quiet_batches, triage_proxy, where, write_triage_config

pytestmark = pytest.mark.clients

HELD = ("Later", "Later/Bulk")
# The test Dovecot's public and shared namespaces (tests/testbed/dovecot.py).
OTHER_NAMESPACES = ("Public", "Shared")
# neomutt screens that mean it is stuck or failed (see test_neomutt.py).
_TROUBLE = (r"\(r\)eject", r"Login failed", r"Password for ", r"Could not connect")


@dataclass(frozen=True)
class Mail:
    mid: str
    subject: str
    raw: bytes


def vip_mail(word: str, n: int = 1) -> Mail:
    mid, subject = f"<vip{n}-{word}@test.example>", f"contract today {n} {word}"
    headers = {"From": "Boss <boss@example.com>", "To": "me@example.com", "Message-ID": mid}
    return Mail(mid, subject, render(headers | {"Subject": subject}, "Please call me."))


def newsletter(word: str, n: int = 1) -> Mail:
    mid, subject = f"<news{n}-{word}@test.example>", f"Weekly digest {n} {word}"
    headers = {
        "From": "News <noreply@news.example.org>",
        "To": "me@example.com",
        "Subject": subject,
        "Message-ID": mid,
        "List-Id": "<weekly.news.example.org>",
        "List-Unsubscribe": "<mailto:leave@news.example.org>",
        "Precedence": "bulk",
    }
    return Mail(mid, subject, render(headers, "This week: articles and events. Unsubscribe."))


def ordinary(word: str) -> Mail:
    """A person's reply in a thread, not from the VIP: the bundled model says it can wait."""
    mid, subject = f"<reply-{word}@test.example>", f"Re: notes from the meeting {word}"
    headers = {
        "From": "Anna Smith <anna@example.org>",
        "To": "me@example.com",
        "Subject": subject,
        "Message-ID": mid,
        "In-Reply-To": "<earlier@example.org>",
        "References": "<earlier@example.org>",
    }
    return Mail(mid, subject, render(headers, "Thanks, I read your notes. Let's talk tomorrow."))


@dataclass
class Triaged:
    dovecot: Dovecot
    proxy: ProxyProcess
    config: Path
    user: str
    password: str

    def deliver(self, *mails: Mail) -> None:
        for mail in mails:
            self.dovecot.deliver(self.user, mail.raw)

    def settle(self, urgent: list[Mail], held: list[Mail]) -> None:
        """Wait until triage has put each message where it belongs, by the server's word."""
        expected = {m.mid: "INBOX" for m in urgent} | {m.mid: "held" for m in held}

        def placed() -> dict[str, str]:
            found = where(self.dovecot, self.user)
            return {
                mid: "held" if found.get(mid) in HELD else found.get(mid, "?") for mid in expected
            }

        wait_until(lambda: placed() == expected, what=lambda: f"{expected}, is {placed()}")

    def release_now(self, count: int) -> None:
        """``commsproxy release --now``, carried out by the running proxy; waits for it."""
        env = {**os.environ, "XDG_CONFIG_HOME": "/nonexistent"}
        args = [sys.executable, "-m", "commsproxy", "release", "--now", "--json"]
        result = run_client([*args, "--config", str(self.config)], env=env, timeout=90)
        report = json.loads(result.stdout)
        assert report["by"] == "run", report
        assert sum(report["released"].values()) == count, report

    def inbox_subjects(self) -> set[str]:
        return {m.subject for m in upstream_messages(self.dovecot, self.user, self.password)}

    def assert_each_once(self) -> None:
        """Every message is on the server exactly once, in whichever of the user's own
        mailboxes (all of them; the public and shared ones hold other tests' mail)."""
        listing = self.dovecot.doveadm("mailbox", "list", "-u", self.user)
        own = tuple(name for name in listing.splitlines() if name and not _elsewhere(name))
        counts = census(self.dovecot, self.user, own)
        assert counts, listing
        assert set(counts.values()) == {1}, counts


@pytest.fixture
def triaged(dovecot: Dovecot, tmp_path: Path) -> Iterator[Triaged]:
    user, password = dovecot.new_user()
    # Quiet batches: no scheduled release can happen during the test, only release --now.
    config = write_triage_config(
        dovecot, user, password, tmp_path / "commsproxy", batches=quiet_batches()
    )
    proxy = triage_proxy(config)
    yield Triaged(dovecot, proxy, config, user, password)
    proxy.stop()
    assert "Traceback" not in proxy.log_text(), proxy.log_text()


def _elsewhere(name: str) -> bool:
    """A folder of the public or shared namespace: every user of the test Dovecot sees them,
    and other tests (filing) put their mail there."""
    return re.split(r"[/.]", name, maxsplit=1)[0] in OTHER_NAMESPACES


def local_copy(root: Path) -> dict[str, Counter[str]]:
    """Subjects per local maildir folder (relative name) of the user's own mailboxes, as the
    client left them."""
    copies = {}
    for cur in root.rglob("cur"):
        name = str(cur.parent.relative_to(root))
        if not _elsewhere(name):
            copies[name] = Counter(m.subject for m in maildir_messages(cur.parent))
    return copies


def check_sync_client(
    t: Triaged, maildir: Path, sync: Callable[[], None], *, syncs_holds: bool
) -> None:
    """Held mail stays out of the synced INBOX until released, then arrives exactly once.

    ``syncs_holds``: the client also syncs the hold mailboxes, so held mail is expected there.
    """
    word = token()
    boss, news, reply = vip_mail(word), newsletter(word), ordinary(word)
    t.deliver(news, reply, boss)
    # At once, before triage is seen to act: the gate triages before answering SELECT INBOX.
    sync()
    assert set(local_copy(maildir)["INBOX"]) == {boss.subject}, local_copy(maildir)
    t.settle([boss], [news, reply])

    # Mail that comes between syncs, when the client has its sync state.
    news2, boss2 = newsletter(word, 2), vip_mail(word, 2)
    t.deliver(news2, boss2)
    t.settle([boss, boss2], [news, reply, news2])
    sync()
    local = local_copy(maildir)
    assert set(local["INBOX"]) == {boss.subject, boss2.subject}, local
    # Held mail is locally only where the server holds it, if the client syncs that at all.
    placed = where(t.dovecot, t.user)
    server_holds: dict[str, set[str]] = {}
    for mail in (news, reply, news2):
        server_holds.setdefault(placed[mail.mid], set()).add(mail.subject)
    local_holds = {name: set(c) for name, c in local.items() if name != "INBOX" and c}
    assert local_holds == (server_holds if syncs_holds else {}), local

    t.release_now(3)
    t.settle([boss, boss2, news, reply, news2], [])
    sync()
    local = local_copy(maildir)
    # The local INBOX mirrors the server's (which also has the release's digest).
    assert set(local["INBOX"]) == t.inbox_subjects(), local
    ours = {m.subject for m in (boss, boss2, news, reply, news2)}
    assert ours <= set(local["INBOX"]), local
    # No stale copy left in a local hold folder, nothing twice.
    everywhere = sum(local.values(), Counter[str]())
    assert all(everywhere[subject] == 1 for subject in ours), local
    t.assert_each_once()


def _backdate(maildir: Path) -> None:
    """mbsync sleeps a second when a maildir changed within this second; ours are complete."""
    past = time.time() - 5
    for sub in [*maildir.rglob("new"), *maildir.rglob("cur")]:
        os.utime(sub, (past, past))


def test_mbsync_gets_held_mail_only_after_release(triaged: Triaged, tmp_path: Path) -> None:
    mbsync = require_program("mbsync")
    maildir = tmp_path / "mail"
    maildir.mkdir()
    # Patterns *: the hold mailboxes are synced too, as users do; moves must not duplicate.
    config = write_mbsync_config(
        tmp_path / "mbsyncrc",
        port=triaged.proxy.imap_port,
        user=triaged.user,
        password=triaged.password,
        security="plain",
        ca_file=triaged.dovecot.ca_file,
        maildir=maildir,
    )

    def sync() -> None:
        _backdate(maildir)
        run_client([mbsync, "-c", str(config), "-a"], env=client_env(tmp_path))

    check_sync_client(triaged, maildir, sync, syncs_holds=True)


def test_offlineimap_gets_held_mail_only_after_release(triaged: Triaged, tmp_path: Path) -> None:
    offlineimap = require_program("offlineimap")
    maildir = tmp_path / "mail"
    maildir.mkdir()
    config = write_offlineimap_config(
        tmp_path / "offlineimaprc",
        port=triaged.proxy.imap_port,
        user=triaged.user,
        password=triaged.password,
        security="plain",
        ca_file=triaged.dovecot.ca_file,
        maildir=maildir,
        metadata=tmp_path / "metadata",
    )
    # INBOX only, the other common setup: then held mail is nowhere locally until released.
    with config.open("a") as fp:
        fp.write("folderfilter = lambda folder: folder == 'INBOX'\n")

    def sync() -> None:
        # -o: one sync and exit; -u basic: plain log lines, no terminal UI.
        run_client([offlineimap, "-c", str(config), "-o", "-u", "basic"], env=client_env(tmp_path))

    check_sync_client(triaged, maildir, sync, syncs_holds=False)


def test_neomutt_index_never_shows_held_mail(triaged: Triaged, tmp_path: Path) -> None:
    neomutt = require_program("neomutt")
    word = token()
    boss, news, reply = vip_mail(word), newsletter(word), ordinary(word)
    triaged.deliver(news, reply, boss)

    certificates = tmp_path / "certificates.pem"
    shutil.copyfile(triaged.dovecot.ca_file, certificates)
    muttrc = write_muttrc(
        tmp_path / "muttrc",
        port=triaged.proxy.imap_port,
        user=triaged.user,
        password=triaged.password,
        security="plain",
        certificate_file=certificates,
        idle=True,
    )
    held = [news, reply]
    with TmuxPane(tmp_path, [neomutt, "-n", "-F", str(muttrc)], env=client_env(tmp_path)) as pane:

        def shows(mail: Mail, *, never: list[Mail]) -> None:
            # Every screen polled on the way is checked: a held subject fails the test at once.
            forbidden = [re.escape(m.subject) for m in never]
            pane.wait_for(re.escape(mail.subject), timeout=15, fail_on=[*_TROUBLE, *forbidden])

        # Opened right after delivery: the gate must triage before neomutt's SELECT is answered.
        shows(boss, never=held)
        triaged.settle([boss], held)

        # Mail that arrives while neomutt IDLEs: the held one first, so the VIP one that
        # follows is decided after it; once the VIP one shows, the held one has had its chance.
        news2, boss2 = newsletter(word, 2), vip_mail(word, 2)
        held.append(news2)
        triaged.deliver(news2, boss2)
        shows(boss2, never=held)
        triaged.settle([boss, boss2], held)
        assert not any(m.subject in pane.screen() for m in held), pane.screen()

        # The release reaches neomutt like new mail, with no key press.
        triaged.release_now(len(held))
        for mail in held:
            shows(mail, never=[])

        pane.send_keys("q")
        status = pane.wait_for_exit()
        assert status == 0, f"neomutt exited {status}:\n{pane.screen()}"
    triaged.assert_each_once()
