"""A quiet batch in the engine's terms: where a label goes at a moment, which releases wait,
and the next release shown. The clock is a parameter; the store and releaser are small fakes."""

from __future__ import annotations

import asyncio
import ssl
from datetime import datetime
from typing import Any, cast
from zoneinfo import ZoneInfo

from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.endpoints import Endpoint, Security
from commsproxy.schedule import QuietHours, Schedule
from commsproxy.triage.due_releases import release_due, upcoming_release
from commsproxy.triage.engine_settings import EngineSettings
from commsproxy.triage.scheduler import quiet_until

AMS = ZoneInfo("Europe/Amsterdam")
BULK = BatchConfig(
    "bulk", "Later/Bulk", ("bulk",), Schedule.parse(["19:00", "12:00"], "daily", "Europe/Amsterdam")
)
HOURS = QuietHours.parse("18:00-08:00", "daily")
EVENING = BatchConfig("evening", "Evening", (), HOURS.releases(AMS), quiet=HOURS)
BATCHES = (BULK, EVENING)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=AMS)  # type: ignore[misc]


class Store:
    def __init__(self, last: dict[str, datetime]) -> None:
        self.last = last

    def last_scheduled_release(self, login: str, batch: str) -> datetime | None:
        return self.last.get(batch)


class Releaser:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.done: list[tuple[str, datetime]] = []

    async def release(self, batch: BatchConfig, *, scheduled: datetime | None) -> int:
        assert scheduled is not None
        self.done.append((batch.name, scheduled))
        self.store.last[batch.name] = scheduled
        return 0


def run_due(releaser: Releaser, store: Store, now: datetime) -> None:
    asyncio.run(
        release_due(cast(Any, releaser), BATCHES, cast(Any, store), "jan", now, asyncio.Lock())
    )


def test_a_label_no_batch_holds_goes_to_the_quiet_batch_only_in_its_window() -> None:
    settings = EngineSettings(
        "jan",
        Endpoint("imap://localhost", "localhost", 143, Security.PLAIN),
        ssl.create_default_context(),
        TriageConfig(),
        BATCHES,
    )
    evening = local(2026, 11, 23, 18, 30)
    assert settings.batch_for("normal", evening) == EVENING
    assert settings.batch_for("bulk", evening) == BULK  # its own batch still holds it
    assert settings.batch_for("urgent", evening) is None
    assert settings.batch_for("normal", local(2026, 11, 23, 12, 0)) is None
    assert settings.batch_for("normal") is None  # no moment: labels alone


def test_releases_inside_the_window_wait_for_its_end_then_come_once() -> None:
    store = Store({"bulk": local(2026, 11, 23, 12, 0), "evening": local(2026, 11, 23, 8, 0)})
    releaser = Releaser(store)
    for hour, minute in ((18, 30), (19, 0), (23, 59)):
        run_due(releaser, store, local(2026, 11, 23, hour, minute))
    run_due(releaser, store, local(2026, 11, 24, 7, 59))
    assert releaser.done == []
    assert quiet_until(BATCHES, local(2026, 11, 23, 19, 0)) == local(2026, 11, 24, 8, 0)
    run_due(releaser, store, local(2026, 11, 24, 8, 0))
    assert releaser.done == [
        ("bulk", local(2026, 11, 23, 19, 0)),
        ("evening", local(2026, 11, 24, 8, 0)),
    ]
    run_due(releaser, store, local(2026, 11, 24, 8, 1))
    assert len(releaser.done) == 2  # once
    run_due(releaser, store, local(2026, 11, 24, 12, 0))  # outside the window: on time
    assert releaser.done[-1] == ("bulk", local(2026, 11, 24, 12, 0))


def test_the_next_release_shown_is_the_windows_end() -> None:
    store = Store({"bulk": local(2026, 11, 23, 12, 0), "evening": local(2026, 11, 23, 8, 0)})
    # at 17:00 the next is bulk's 19:00, which falls in the window: 08:00 tomorrow (evening's
    # end too; bulk comes first by name)
    assert upcoming_release(BATCHES, cast(Any, store), "jan", local(2026, 11, 23, 17, 0)) == (
        "bulk",
        local(2026, 11, 24, 8, 0),
    )
    # overdue before the window and still not done once it began: at its end, not "now"
    late = Store({"bulk": local(2026, 11, 22, 19, 0), "evening": local(2026, 11, 23, 8, 0)})
    coming = upcoming_release(BATCHES, cast(Any, late), "jan", local(2026, 11, 23, 20, 0))
    assert coming == ("bulk", local(2026, 11, 24, 8, 0))


def test_a_quiet_release_missed_while_triage_was_down_waits_for_the_next_windows_end() -> None:
    # the 08:00 release did not happen (triage down all day); at 18:30 the next window runs
    store = Store({"bulk": local(2026, 11, 23, 12, 0), "evening": local(2026, 11, 23, 8, 0)})
    releaser = Releaser(store)
    run_due(releaser, store, local(2026, 11, 24, 18, 30))
    assert releaser.done == []
    assert upcoming_release(BATCHES, cast(Any, store), "jan", local(2026, 11, 24, 18, 30)) == (
        "bulk",
        local(2026, 11, 25, 8, 0),
    )
    run_due(releaser, store, local(2026, 11, 25, 8, 0))
    assert releaser.done == [
        ("bulk", local(2026, 11, 24, 19, 0)),
        ("evening", local(2026, 11, 25, 8, 0)),
    ]
