"""HistoryKeeper: read once at the first start, saved with the Sent cursor, loaded at restart."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from commsproxy.classifier.mail import parse_mail
from commsproxy.config import TriageConfig
from commsproxy.triage import history_keeper
from commsproxy.triage.history import LiveHistory
from commsproxy.triage.history_keeper import HistoryKeeper
from commsproxy.triage.state_store import StateStore
from commsproxy.triage.upstream import UpstreamImapError
from tests.mailfactory import render

from .fake_imap import Clock, FakeUpstream

ME, ANN = "me@corp.example", "ann@acme.example"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
TRIAGE = TriageConfig(history_seconds=30, history_messages=100, history_sent_check=5)


def message(mid: str, sender: str, when: datetime, parent: str | None = None) -> bytes:
    headers = {"From": sender, "To": ANN if sender == ME else ME, "Message-ID": mid}
    headers |= {"Subject": "Re: order" if parent else "order", "Date": format_datetime(when)}
    if parent:
        headers |= {"In-Reply-To": parent}
    return render(headers, "")


def mailbox() -> dict[str, list[tuple[datetime, bytes]]]:
    """Ann wrote twice; the user answered the first after 30 minutes."""
    a1, a2 = NOW - timedelta(days=2), NOW - timedelta(days=1)
    return {
        "INBOX": [(a1, message("<a1@x>", ANN, a1)), (a2, message("<a2@x>", ANN, a2))],
        "Sent": [(a1, message("<r1@x>", ME, a1 + timedelta(minutes=30), "<a1@x>"))],
    }


class Setup:
    def __init__(self, tmp_path: Path) -> None:
        self.store = StateStore.open(tmp_path / "state")
        self.clock = Clock()
        self.folders = mailbox()
        self.up = FakeUpstream(self.folders, {"Sent": {"\\Sent"}}, clock=self.clock)

    def keeper(self) -> HistoryKeeper:
        history = LiveHistory([ME])
        return HistoryKeeper(
            history, self.store, "me", TRIAGE, address=ME, clock=lambda: NOW,
            monotonic=self.clock,
        )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    return Setup(tmp_path)


def stats(keeper: HistoryKeeper) -> tuple[int, int, float | None]:
    ann = keeper.history.sender_stats(ANN)
    return ann.received, ann.replied, ann.median_reply_minutes


async def test_the_first_start_reads_the_server_and_saves_with_the_sent_cursor(
    setup: Setup,
) -> None:
    keeper = setup.keeper()
    await keeper.start(setup.up.as_upstream(), ["Later"])
    assert keeper.history.known
    assert stats(keeper) == (2, 1, 30.0)
    record = setup.store.history("me")
    assert record is not None
    assert (record.state, record.messages, record.folders, record.stopped) == ("ready", 3, 2, None)
    assert (record.sent_mailbox, record.sent_uidvalidity, record.sent_uid) == ("Sent", 7, 1)
    assert (record.started, record.finished, record.senders) == (NOW, NOW, 1)
    assert record.document is not None
    assert json.loads(record.document)["senders"][ANN][:2] == [2, 1]
    status = setup.store.history_status("me")
    assert status is not None
    assert status.document is None
    assert status.messages == 3
    assert stat.S_IMODE(setup.store.path.stat().st_mode) == 0o600  # it names correspondents


async def test_a_restart_loads_and_reads_only_what_is_new_in_sent(setup: Setup) -> None:
    await setup.keeper().start(setup.up.as_upstream())
    # While commsproxy was stopped, a phone answered Ann's second message.
    a2 = NOW - timedelta(days=1)
    setup.folders["Sent"].append((a2, message("<r2@x>", ME, a2 + timedelta(minutes=50), "<a2@x>")))
    setup.up.commands.clear()
    again = setup.keeper()
    await again.start(setup.up.as_upstream())
    assert again.history.known
    assert stats(again) == (2, 2, 40.0)
    assert "EXAMINE INBOX" not in setup.up.commands  # no second read of the server
    assert setup.up.fetched("Sent") == ["FETCH Sent 2:2"]
    record = setup.store.history("me")
    assert record is not None
    assert (record.sent_uid, record.messages) == (2, 3)
    assert record.document is not None
    assert json.loads(record.document)["senders"][ANN][:2] == [2, 2]


async def test_sent_is_looked_at_every_history_sent_check_seconds(setup: Setup) -> None:
    keeper = setup.keeper()
    await keeper.start(setup.up.as_upstream())
    setup.up.commands.clear()
    await keeper.look_at_sent(setup.up.as_upstream())
    assert setup.up.commands == []  # looked at just now, at the start
    setup.clock.now += 5
    await keeper.look_at_sent(setup.up.as_upstream())
    assert setup.up.commands == ["STATUS Sent"]  # nothing new: one STATUS, nothing read


async def test_the_next_look_at_sent_counts_from_the_last_look(setup: Setup) -> None:
    keeper = setup.keeper()
    assert keeper.next_look() == 5  # before the start: a whole interval
    await keeper.start(setup.up.as_upstream())
    setup.clock.now += 3
    assert keeper.next_look() == 2  # the worker's nap ends when the look is due
    setup.clock.now += 2
    assert keeper.next_look() == 0
    await keeper.look_at_sent(setup.up.as_upstream())
    assert keeper.next_look() == 5


async def test_mail_flowing_in_is_saved_at_most_every_few_seconds(setup: Setup) -> None:
    keeper = setup.keeper()
    await keeper.start(setup.up.as_upstream())
    a3 = parse_mail(message("<a3@x>", ANN, NOW))
    keeper.received([a3])
    keeper.sent(parse_mail(message("<r3@x>", ME, NOW + timedelta(minutes=10), "<a3@x>")))
    assert stats(keeper) == (3, 2, 20.0)
    keeper.save()
    record = setup.store.history("me")
    assert record is not None
    assert record.document is not None
    assert json.loads(record.document)["senders"][ANN][:2] == [2, 1]  # too soon
    setup.clock.now += history_keeper.SAVE_EVERY
    keeper.save()
    record = setup.store.history("me")
    assert record is not None
    assert record.document is not None
    assert json.loads(record.document)["senders"][ANN][:2] == [3, 2]


async def test_a_read_cut_short_is_not_saved_and_the_next_start_reads_again(
    setup: Setup,
) -> None:
    setup.up.broken_after = 1
    with pytest.raises(UpstreamImapError):
        await setup.keeper().start(setup.up.as_upstream())
    record = setup.store.history("me")
    assert record is not None
    assert (record.state, record.document) == ("reading", None)
    setup.up.broken_after = None
    keeper = setup.keeper()
    await keeper.start(setup.up.as_upstream())
    assert stats(keeper) == (2, 1, 30.0)


async def test_the_time_limit_ends_the_first_read_with_what_it_has(setup: Setup) -> None:
    setup.up.fetch_seconds = 40  # the first chunk (Sent) uses up the 30 s
    keeper = setup.keeper()
    await keeper.start(setup.up.as_upstream())
    assert keeper.history.known
    record = setup.store.history_status("me")
    assert record is not None
    assert (record.state, record.messages, record.stopped) == ("ready", 1, "time")
    assert stats(keeper) == (0, 0, None)
    keeper.received([parse_mail(message("<a2@x>", ANN, NOW))])  # triage goes on from here
    assert stats(keeper) == (1, 0, None)


async def test_a_broken_saved_history_is_read_again(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    await setup.keeper().start(setup.up.as_upstream())
    record = setup.store.history("me")
    assert record is not None
    setup.store.save_history(replace(record, document="{broken"))
    keeper = setup.keeper()
    await keeper.start(setup.up.as_upstream())
    assert "the saved history cannot be used" in caplog.text
    assert ANN not in caplog.text
    assert stats(keeper) == (2, 1, 30.0)
