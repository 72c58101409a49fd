"""A backlog is held in one UID MOVE per hold mailbox per group of steps, and a cut at that
move loses and repeats nothing.

The engine runs in process against the real Dovecot (test_triage_faults.py's setup), with its
steps and groups made small (4 and 12 messages) so that 30 messages are three groups of several
steps each. Every message is decided and tagged in its step; the moves come once per group. A
connection cut at a group's first ``UID MOVE`` (before the server sees it, or after it did the
move) leaves the group's decided and tagged mail in INBOX with the cursor before it: the next
session must move it, and decide none of it twice.
"""

from __future__ import annotations

import logging
import re
from collections import Counter

import pytest

from commsproxy.imap.names import INBOX, URGENT
from commsproxy.triage import new_mail
from tests.integration.test_triage_faults import (
    BATCHES,
    BEFORE_NOON,
    KEYWORDS,
    MOVE,
    Clock,
    Setup,
    assert_no_errors,
    decider,
    eventually,
    expected_mailbox,
    mixed_mail,
    reconnects,
    running,
    setup,
)
from tests.testbed.faulthop import FaultHop, Mode

__all__ = ["decider", "setup"]  # the fixtures, used by name

MESSAGES = 30
STEP, GROUP = 4, 12
HELD = re.compile(r"held (\d+) message\(s\) in (\S+)")


@pytest.fixture(autouse=True)
def small_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(new_mail, "_CHUNK", STEP)
    monkeypatch.setattr(new_mail, "_GROUP", GROUP)


async def _triage_backlog(setup: Setup, port: int) -> None:
    """The backlog arrives before the engine starts (a first start triages recent unread mail
    as new), then the engine runs until every message is where its decision says."""
    for n in range(MESSAGES):
        await setup.deliver(mixed_mail(n))
    engine = setup.engine(port, BATCHES, Clock(BEFORE_NOON))
    async with running(engine):
        await eventually(setup.all_in_place, 30, "every message triaged and in place")


async def _assert_each_once_in_place(setup: Setup) -> None:
    assert await setup.census() == Counter(dict.fromkeys(setup.delivered, 1))
    found = await setup.flags()
    for mid in setup.delivered:
        decisions = setup.store.decisions_for_message_id(mid)
        assert len(decisions) == 1, (mid, decisions)  # decided once, cut or not
        label = decisions[0].label
        mailbox, flags = found[mid]
        assert mailbox == expected_mailbox(label), (mid, label, mailbox)
        assert {"$Triaged", *KEYWORDS[label]} <= flags, (mid, label, flags)
    labels = [setup.label(mid) for mid in setup.delivered]
    assert set(labels[::3]) == {URGENT}  # the VIP rule
    cursor = setup.store.cursor(setup.user, INBOX)
    assert cursor is not None
    assert cursor[1] >= MESSAGES  # past the whole backlog


def _holds(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    found = (HELD.search(r.getMessage()) for r in caplog.records)
    return [(int(m.group(1)), m.group(2)) for m in found if m]


async def test_a_backlog_is_held_in_one_move_per_hold_mailbox_per_group(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy.triage")
    await _triage_backlog(setup, setup.dovecot.imap_port)

    await _assert_each_once_in_place(setup)
    assert_no_errors(caplog)
    # 30 messages in groups of 12 (each of 3 steps of 4): one move per hold mailbox per group,
    # each with a third of the group (every third message is urgent and stays).
    held = _holds(caplog)
    for mailbox in ("Later", "Later/Bulk"):
        assert [n for n, where in held if where == mailbox] == [4, 4, 2], held


@pytest.mark.parametrize("mode", ["before", "after"])
async def test_a_cut_at_a_groups_move_holds_the_whole_group_once(
    setup: Setup, mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy.triage")
    async with FaultHop(setup.dovecot.host, setup.dovecot.imap_port) as hop:
        hop.arm(MOVE, mode, times=1)  # the first group's first UID MOVE
        await _triage_backlog(setup, hop.port)

    assert hop.cuts == 1
    assert len(reconnects(caplog)) == 1, reconnects(caplog)
    assert_no_errors(caplog)
    await _assert_each_once_in_place(setup)
    held = _holds(caplog)
    # The first group's 8 held messages were decided and tagged in three steps before the
    # cut; the next session moves them (those a completed MOVE took are gone from INBOX).
    assert sum(n for n, _ in held) == 20 - (4 if mode == "after" else 0), held
