"""A config edited while ``run`` runs, against the real Dovecot: a new VIP is in force at once,
a broken edit keeps the last good config and the log says why."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_triage import (
    Account,
    _id,
    decisions,
    newsletter,
    thread_reply,
    wait_decided,
    wait_in,
)
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import wait_until, where

VIPS = 'vip = ["boss@example.com", "*@vip.example"]'


@pytest.fixture
def account(dovecot: Dovecot, tmp_path: Path) -> Iterator[Account]:
    made = Account(dovecot, tmp_path / "commsproxy")
    yield made
    for proxy in made.proxies:
        proxy.stop()
    for proxy in made.proxies:
        assert "Traceback" not in proxy.log_text(), proxy.log_text()


def edit(account: Account, old: str, new: str) -> None:
    text = account.config.read_text(encoding="utf-8")
    assert old in text
    account.config.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_a_vip_added_while_running_is_delivered_at_once(account: Account) -> None:
    proxy = account.start()
    held = _id()
    account.deliver(thread_reply(held))  # from anna@example.org: normal, held in Later
    wait_decided(proxy, 1)
    assert wait_in(account, held, ("Later",)) == "Later"

    # No signal: the file's new modification time is enough.
    edit(account, VIPS, 'vip = ["boss@example.com", "*@vip.example", "anna@example.org"]')
    assert proxy.wait_for_log(r"config reloaded: \[triage\] vip in force now", 15), proxy.log_text()
    vip = _id()
    account.deliver(thread_reply(vip))
    wait_decided(proxy, 2)
    assert decisions(proxy)[-1][1] == "urgent"
    assert wait_in(account, vip, ("INBOX",)) == "INBOX"
    assert "$Urgent" in account.flags(vip)
    assert account.where(held) == "Later"  # what was held before stays held

    # A broken edit (and SIGHUP, where there is one): the log names file, line and key ...
    edit(account, "gate_timeout = 5", 'gate_timeout = "soon"')
    proxy.signal(signal.SIGHUP)
    assert proxy.wait_for_log(r"config not reloaded, the last good config stays", 15)
    line = next(x for x in proxy.lines() if "config not reloaded" in x)
    assert re.search(rf"{re.escape(str(account.config))}:\d+: \[triage\] gate_timeout", line), line
    # ... and the last good config, new VIP included, keeps working.
    again = _id()
    account.deliver(thread_reply(again))
    wait_decided(proxy, 3)
    assert decisions(proxy)[-1][1] == "urgent"
    assert wait_in(account, again, ("INBOX",)) == "INBOX"
    assert proxy.returncode is None


def test_a_listener_change_says_a_restart_is_needed(account: Account) -> None:
    proxy = account.start()
    edit(account, 'imap = "127.0.0.1:0"', 'imap = "127.0.0.1:1"')
    assert proxy.wait_for_log(r"restart needed for \[proxy\] imap", 15), proxy.log_text()
    assert proxy.returncode is None


def test_a_batch_moved_to_another_mailbox_holds_there_without_a_restart(account: Account) -> None:
    proxy = account.start()
    edit(account, 'mailbox = "Later/Bulk"', 'mailbox = "Newsletters"')
    assert proxy.wait_for_log(r"config reloaded: \[\[batch\]\] in force now", 15)
    # Triage starts over with the new batches: the new hold mailbox is created first.
    assert wait_until(lambda: proxy.log_text().count("watching INBOX") >= 2, 20), proxy.log_text()
    news = _id()
    account.deliver(newsletter(news))
    wait_decided(proxy, 1)
    assert decisions(proxy)[-1][1] == "bulk"

    def in_newsletters() -> bool:
        return where(account.dovecot, account.user, ("Newsletters",)).get(news) == "Newsletters"

    assert wait_until(in_newsletters, 15), account.where(news)
