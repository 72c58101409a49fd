"""The one-click actions against the real Dovecot and a real ``commsproxy run``: deliver a held
message now (through run and without it), always/never urgent for a sender while run runs,
focus off until a time and back on, and a SIGKILL of run while it serves a deliver request."""

from __future__ import annotations

import asyncio
import imaplib
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.triage.holding import SWITCH, holding_switch
from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage import (
    HELD,
    Account,
    _id,
    account,
    decisions,
    internaldate,
    newsletter,
    thread_reply,
    vip_mail,
    wait_decided,
    wait_in,
)
from tests.integration.test_triage_health import Login
from tests.integration.test_triage_kill import Mail, kill, reappending, started
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop, Mode
from tests.testbed.triage import census, flags_by_id, quiet_batches, wait_until

__all__ = ["account"]  # the fixture, used by name


def rescues(state: Path, login: str) -> list[tuple[str | None, str, str]]:
    with StateStore.open(state) as store:
        return [(c.message_id, c.label, c.previous or "") for c in store.corrections(login)
                if c.kind == "rescue"]  # fmt: skip


def test_deliver_a_held_message_while_run_runs(account: Account) -> None:
    proxy = account.start()
    news, other = _id(), _id()
    account.deliver(newsletter(news))
    account.deliver(newsletter(other))
    wait_decided(proxy, 2)
    wait_in(account, news, HELD)
    wait_in(account, other, HELD)

    result = account.cli("deliver", news.strip("<>"))  # without the <> works too
    assert result.returncode == 0, result.stderr + result.stdout
    said = "\u201cWeekly digest\u201d from noreply@news.example.org is in your INBOX now"
    assert said in result.stdout, result.stdout
    assert f"asked commsproxy run (pid {proxy.pid})" in result.stderr, result.stderr
    assert account.where(news) == "INBOX"
    assert "$Released" in account.flags(news)
    assert account.where(other) in HELD  # only that one
    assert rescues(account.state_dir, account.user) == [(news.strip("<>"), "urgent", "bulk")]

    # A message that is not held: refused, and nothing changes.
    again = account.cli("deliver", news)
    assert again.returncode == 1
    assert "in INBOX already: it is not held" in again.stderr, again.stderr
    unknown = account.cli("deliver", "<nobody@nowhere.example>")
    assert unknown.returncode == 1
    assert "no held message has Message-ID <nobody@nowhere.example>" in unknown.stderr

    # The delivered message is never triaged again, and each message is there once.
    later = _id()
    account.deliver(vip_mail(later))
    wait_decided(proxy, 3)
    assert wait_until(lambda: "$Triaged" in account.flags(later), 20)
    assert len(decisions(proxy)) == 3, decisions(proxy)
    assert account.where(news) == "INBOX"
    counts = census(account.dovecot, account.user)
    assert counts[news] == counts[other] == counts[later] == 1
    assert len(rescues(account.state_dir, account.user)) == 1


def test_deliver_without_run(account: Account) -> None:
    proxy = account.start()
    reply = _id()
    account.deliver(thread_reply(reply))
    wait_decided(proxy, 1)
    wait_in(account, reply, ("Later",))
    proxy.stop()

    result = account.cli("deliver", reply)
    assert result.returncode == 0, result.stderr + result.stdout
    said = "\u201cRe: notes from the meeting\u201d from anna@example.org is in your INBOX now"
    assert said in result.stdout, result.stdout
    assert "asked commsproxy run" not in result.stderr
    assert account.where(reply) == "INBOX"
    assert "$Released" in account.flags(reply)
    assert rescues(account.state_dir, account.user) == [(reply.strip("<>"), "urgent", "normal")]
    with StateStore.open(account.state_dir) as store:
        assert store.pending_deliveries() == []
    assert census(account.dovecot, account.user)[reply] == 1

    # The next run leaves it where it is.
    proxy = account.start()
    more = _id()
    account.deliver(vip_mail(more))
    wait_decided(proxy, 1)
    assert account.where(reply) == "INBOX"
    assert len(decisions(proxy)) == 1


def test_deliver_from_a_reappend_batch_arrives_fresh(account: Account) -> None:
    account.write_config(batches=quiet_batches(later_reappend=True))
    proxy = account.start()
    reply = _id()
    old = imaplib.Time2Internaldate(datetime(2020, 1, 2, 12, 0, tzinfo=UTC))
    conn = account.imap()
    conn.append("INBOX", None, old, thread_reply(reply))
    wait_decided(proxy, 1)
    assert wait_in(account, reply, HELD) == "Later", "the bundled model no longer says normal"
    original = internaldate(conn, "Later", reply)

    started = time.time()
    result = account.cli("deliver", reply)
    assert result.returncode == 0, result.stderr + result.stdout
    assert internaldate(conn, "INBOX", reply) >= started - 2 > original  # a fresh arrival
    conn.logout()
    assert "$Released" in account.flags(reply)
    assert census(account.dovecot, account.user)[reply] == 1
    assert rescues(account.state_dir, account.user) == [(reply.strip("<>"), "urgent", "normal")]


def test_urgent_always_and_never_while_run_runs(account: Account) -> None:
    proxy = account.start()
    before = account.config.read_text(encoding="utf-8")
    result = account.cli("urgent", "always", "Anna@Example.org")
    assert result.returncode == 0, result.stderr
    assert "anna@example.org is always urgent now" in result.stdout
    assert proxy.wait_for_log(r"config reloaded: \[triage\] vip in force now", 20), proxy.log_text()
    reply = _id()  # a thread reply from anna: held as normal without the rule
    account.deliver(thread_reply(reply))
    wait_decided(proxy, 1)
    assert wait_until(lambda: "$Triaged" in account.flags(reply), 20)
    assert account.where(reply) == "INBOX"
    assert "$Urgent" in account.flags(reply)

    result = account.cli("urgent", "never", "boss@example.com")
    assert result.returncode == 0, result.stderr
    assert "taken out of [triage] vip" in result.stdout
    assert proxy.wait_for_log(r"\[triage\] never_urgent in force now", 20), proxy.log_text()
    boss = _id()  # was a VIP: now the model decides, and never says urgent
    account.deliver(vip_mail(boss))
    wait_decided(proxy, 2)
    wait_in(account, boss, HELD)
    assert "$Urgent" not in account.flags(boss)

    listed = account.cli("urgent", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"anna@example.org"' in listed.stdout
    after = account.config.read_text(encoding="utf-8")
    changed = set(after.splitlines()) ^ set(before.splitlines())
    assert all(line.startswith(("vip =", "never_urgent =")) for line in changed), changed


def test_focus_off_until_a_time_then_holding_by_itself(account: Account) -> None:
    proxy = account.start()
    held = _id()
    account.deliver(newsletter(held))
    wait_decided(proxy, 1)
    wait_in(account, held, HELD)

    until = datetime.now(UTC) + timedelta(hours=1)
    result = account.cli("stop-holding", "--until", until.isoformat(timespec="seconds"))
    assert result.returncode == 0, result.stderr + result.stdout
    assert "holding paused until" in result.stdout, result.stdout
    assert account.where(held) == "INBOX"  # what was held is released
    status = account.cli("status")
    assert "holding: paused until" in status.stdout, status.stdout

    during = _id()
    account.deliver(newsletter(during))
    wait_decided(proxy, 2)
    assert wait_until(lambda: "$Triaged" in account.flags(during), 20)
    assert account.where(during) == "INBOX"

    # The pause runs out (its time is moved to the past, as time passing would): holding
    # resumes with no command and no restart.
    switch = holding_switch(account.state_dir)
    assert switch is not None
    assert switch.until is not None
    past = datetime.now(UTC) - timedelta(seconds=1)
    (account.state_dir / SWITCH).write_text(
        f"{switch.since.isoformat()}\nuntil {past.isoformat()}\n"
    )
    status = account.cli("status")
    assert "holding:" not in status.stdout, status.stdout
    after = _id()
    account.deliver(newsletter(after))
    wait_decided(proxy, 3)
    wait_in(account, after, HELD)
    assert account.where(during) == "INBOX"

    bad = account.cli("stop-holding", "--until", "25:00")
    assert bad.returncode == 2
    assert "--until" in bad.stderr


@pytest.mark.parametrize(
    ("command", "cut", "batches"),
    [
        (rb"^\S+ UID MOVE ", "before", None),
        (rb"^\S+ UID MOVE ", "after", None),
        (rb"^\S+ APPEND ", "after", "reappend"),  # the copy is in INBOX, the original held
        (rb"^\S+ UID EXPUNGE ", "before", "reappend"),  # ... and marked deleted
    ],
)
async def test_run_killed_while_serving_a_deliver_request(
    dovecot: Dovecot, tmp_path: Path, command: bytes, cut: Mode, batches: str | None
) -> None:
    """The worker's link is cut at a step of the delivery (before the server did it, or
    after), and run is SIGKILLed; after the restart the message is in INBOX exactly once."""
    async with FaultHop("127.0.0.1", dovecot.imap_port) as hop:
        login = Login(
            dovecot, tmp_path, upstream=f"imap://127.0.0.1:{hop.port}",
            batches=reappending() if batches else None,
        )  # fmt: skip
        mail = Mail(dovecot, login.user)
        proxy = await asyncio.to_thread(started, login)
        mids = await asyncio.to_thread(mail.deliver, 3)
        assert await asyncio.to_thread(wait_until, lambda: mail.held() == 3, 30)

        hop.arm(command, cut)
        asker = subprocess.Popen(
            [sys.executable, "-m", "commsproxy", "deliver", mids[1], "--config", str(login.config)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert await asyncio.to_thread(wait_until, lambda: hop.cuts >= 1, 30), proxy.log_text()
        await asyncio.to_thread(kill, proxy)
        asker.kill()
        await asyncio.to_thread(asker.communicate)

        proxy = await asyncio.to_thread(started, login)
        try:

            def served() -> bool:
                with StateStore.open(login.state) as store:
                    return not store.pending_deliveries()

            assert await asyncio.to_thread(wait_until, served, 30), proxy.log_text()
        finally:
            await asyncio.to_thread(proxy.stop)
    assert "Traceback" not in proxy.log_text(), proxy.log_text()
    mail.check_once()
    with StateStore.open(login.state) as store:
        request = store.delivery(1)
    assert request is not None
    assert (request.outcome, request.message_id) == ("delivered", mids[1].strip("<>"))
    places = {mid: login.placed(mid) for mid in mids}
    assert places[mids[1]] == "INBOX", places
    assert places[mids[0]] != "INBOX"
    assert places[mids[2]] != "INBOX"
    flags = flags_by_id(dovecot, login.user)
    assert "$Released" in flags[mids[1]][1]
    assert len(rescues(login.state, login.user)) == 1
