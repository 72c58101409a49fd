"""A batch whose hold mailbox the config changes (or removes), against the real Dovecot: what
was held in the old mailbox comes back to INBOX at the engine's next start -- at once, with a
live reload as with a restart -- marked ``$Released``, with a digest naming the old mailbox;
new mail is held in the new one; each message exactly once; the old mailbox stays on the server.
"""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage import Account, _id, newsletter, thread_reply
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop, Mode
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, flags_by_id, wait_until

EVERY = ("INBOX", "Later", "Later/Bulk", "Newsletters")
LEFT = r"released 2 message\(s\) from mail held in Later.Bulk before the config changed"
FINISHED = r"finishing the interrupted release of mail held in Later.Bulk before the config"


@pytest.fixture
def account(dovecot: Dovecot, tmp_path: Path) -> Iterator[Account]:
    made = Account(dovecot, tmp_path / "commsproxy")
    yield made
    for proxy in made.proxies:
        proxy.stop()
    for proxy in made.proxies:
        assert "Traceback" not in proxy.log_text(), proxy.log_text()


def placed(account: Account, mid: str) -> str | None:
    return flags_by_id(account.dovecot, account.user, EVERY).get(mid, ("", frozenset()))[0] or None


def hold_some(account: Account, proxy: ProxyProcess) -> tuple[list[str], str]:
    """Two newsletters held in Later/Bulk and a normal message held in Later."""
    bulk = [_id(), _id()]
    normal = _id()
    for mid in bulk:
        account.deliver(newsletter(mid))
    account.deliver(thread_reply(normal))
    held = (*(("Later/Bulk", mid) for mid in bulk), ("Later", normal))
    assert wait_until(lambda: all(placed(account, m) == box for box, m in held), 30), (
        proxy.log_text()
    )
    return bulk, normal


def move_bulk(account: Account) -> None:
    text = account.config.read_text(encoding="utf-8")
    assert text.count('mailbox = "Later/Bulk"') == 1
    account.config.write_text(
        text.replace('mailbox = "Later/Bulk"', 'mailbox = "Newsletters"'), encoding="utf-8"
    )


def remove_bulk(account: Account) -> None:
    # The config's own text minus the bulk batch: new quiet_batches() could name another
    # minute, and a changed release time may make the later batch due at the restart.
    text = account.config.read_text(encoding="utf-8")
    start = text.index('[[batch]]\nname = "bulk"')
    end = text.index('timezone = "UTC"\n', start) + len('timezone = "UTC"\n')
    later_only = text[:start] + text[end:]
    assert 'name = "bulk"' not in later_only
    assert 'name = "later"' in later_only
    account.config.write_text(later_only, encoding="utf-8")


def check_released(
    account: Account, proxy: ProxyProcess, bulk: list[str], normal: str, said: str = LEFT
) -> None:
    """The held bulk mail back in INBOX, released; the normal mail still held; the record."""

    def back() -> bool:
        found = flags_by_id(account.dovecot, account.user, EVERY)
        return all(found.get(m, ("", frozenset()))[0] == "INBOX" for m in bulk)

    assert wait_until(back, 30), proxy.log_text()
    found = flags_by_id(account.dovecot, account.user, EVERY)
    for mid in bulk:
        assert "$Released" in found[mid][1], found[mid]
    assert found[normal][0] == "Later"  # its batch did not change: still held
    assert proxy.wait_for_log(said, 15), proxy.log_text()
    # The old mailbox stays (never deleted), holding nothing triage held, and is no longer on
    # record; mail the user put there is not triage's to release.
    mailboxes = account.dovecot.doveadm("mailbox", "list", "-u", account.user).split()
    assert "Later/Bulk" in mailboxes
    found = flags_by_id(account.dovecot, account.user, EVERY).values()
    left = [flags for box, flags in found if box == "Later/Bulk"]
    assert not any("$Triaged" in flags for flags in left), left

    def forgotten() -> bool:
        with StateStore.open(account.state_dir) as store:
            return "Later/Bulk" not in store.hold_mailboxes(account.user) and not (
                store.unfinished_releases(account.user)
            )

    assert wait_until(forgotten, 15)
    digests = [
        line for line in account.dovecot.doveadm(
            "fetch", "-u", account.user, "hdr.subject", "mailbox", "INBOX",
            "HEADER", "Subject", "mail held in Later/Bulk before the config changed",
        ).splitlines() if "released" in line
    ]  # fmt: skip
    assert len(digests) == 1, digests


def check_once(account: Account, mids: list[str]) -> None:
    counts = census(account.dovecot, account.user, EVERY)
    mine = Counter({m: counts[m] for m in mids})
    assert all(n == 1 for n in mine.values()), mine


def test_a_live_reload_releases_what_the_old_hold_mailbox_held(account: Account) -> None:
    proxy = account.start()
    bulk, normal = hold_some(account, proxy)

    move_bulk(account)
    assert proxy.wait_for_log(r"config reloaded: \[\[batch\]\] in force now", 15)
    check_released(account, proxy, bulk, normal)

    news = _id()  # new bulk mail is held in the new mailbox
    account.deliver(newsletter(news))
    assert wait_until(lambda: placed(account, news) == "Newsletters", 30), proxy.log_text()
    check_once(account, [*bulk, normal, news])
    assert proxy.log_text().count("released 2 message(s) from mail held in") == 1


@pytest.mark.parametrize("edit", [move_bulk, remove_bulk], ids=["moved", "removed"])
def test_a_restart_releases_what_the_old_hold_mailbox_held(
    account: Account, edit: Callable[[Account], None]
) -> None:
    proxy = account.start()
    bulk, normal = hold_some(account, proxy)
    proxy.stop()
    own = _id()  # the user's own mail in that folder, not held by triage: it stays there
    conn = account.imap()
    conn.append("Later/Bulk", None, None, newsletter(own))
    conn.logout()

    edit(account)
    proxy = account.start()
    check_released(account, proxy, bulk, normal)
    assert placed(account, own) == "Later/Bulk", proxy.log_text()

    news = _id()
    account.deliver(newsletter(news))
    there = "Newsletters" if edit is move_bulk else "INBOX"  # no bulk batch: not held
    assert wait_until(lambda: placed(account, news) == there, 30), proxy.log_text()
    check_once(account, [*bulk, normal, news, own])

    # One more start: nothing left on record to release, so nothing released again.
    proxy.stop()
    proxy = account.start()
    assert wait_until(lambda: "watching INBOX" in proxy.log_text(), 30)
    assert "from mail held in" not in proxy.log_text()
    check_once(account, [*bulk, normal, news, own])


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_killed_while_releasing_the_old_hold_mailbox(account: Account, mode: Mode) -> None:
    """The release of the old mailbox cut at its move (the move dropped, or done but its answer
    lost) and run killed: the next start finishes it, nothing lost, nothing twice."""
    async with FaultHop("127.0.0.1", account.dovecot.imap_port) as hop:
        account.write_config(upstream=f"imap://127.0.0.1:{hop.port}")
        proxy = await asyncio.to_thread(account.start)
        bulk, normal = await asyncio.to_thread(hold_some, account, proxy)
        await asyncio.to_thread(proxy.stop)

        move_bulk(account)
        hop.arm(rb"^\S+ UID MOVE \S+ \"?INBOX\"?\r?$", mode)  # the release's move, not a hold
        proxy = ProxyProcess(["--config", str(account.config)]).start()
        account.proxies.append(proxy)
        assert await asyncio.to_thread(wait_until, lambda: hop.cuts >= 1, 30), proxy.log_text()
        proxy.signal(signal.SIGKILL)
        await asyncio.to_thread(proxy.wait)
        with StateStore.open(account.state_dir) as store:
            assert "Later/Bulk" in store.hold_mailboxes(account.user)  # still to do

        proxy = await asyncio.to_thread(account.start)
        await asyncio.to_thread(check_released, account, proxy, bulk, normal, FINISHED)
        news = _id()
        account.deliver(newsletter(news))
        assert await asyncio.to_thread(
            wait_until, lambda: placed(account, news) == "Newsletters", 30
        ), proxy.log_text()
    check_once(account, [*bulk, normal, news])
