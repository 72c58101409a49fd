"""``commsproxy deliver`` served by the hub: through the login's engine, under its lock, kept
queued while the engine is not connected, refused for a message that is not held."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from commsproxy.triage import hub as hub_module
from commsproxy.triage.deliver_now import NotHeld
from commsproxy.triage.engine import Engine
from commsproxy.triage.hub import LoginRoute, TriageHub
from commsproxy.triage.state_store import DeliverRequest, StateStore

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class FakeEngine:
    def __init__(self) -> None:
        self.ready = False
        self.worker: object | None = None
        self.hold_names = {"later": "Later", "bulk": "Later/Bulk"}
        batches = [SimpleNamespace(name="later", reappend=True)]
        batches.append(SimpleNamespace(name="bulk", reappend=False))
        self.settings = SimpleNamespace(clock=lambda: T0, batches=batches)
        self.between_steps = asyncio.Lock()
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


async def test_served_through_the_engine_once_it_is_connected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "_REQUEST_POLL", 0.01)
    monkeypatch.setattr(hub_module, "_REQUEST_RETRY_MAX", 0.02)
    seen: list[tuple[object, list[str], bool, set[str]]] = []
    engine = FakeEngine()

    async def deliver_held(
        worker: object, store: StateStore, request: DeliverRequest, holds: Sequence[str],
        clock: object, fresh: set[str],
    ) -> str:  # fmt: skip
        seen.append((worker, list(holds), engine.between_steps.locked(), fresh))
        if request.message_id == "gone@x":
            raise NotHeld("no held message has Message-ID <gone@x>")
        return f"<{request.message_id}> delivered to INBOX (from Later)"

    monkeypatch.setattr(hub_module, "deliver_held", deliver_held)
    with StateStore.open(tmp_path) as store:
        hub = TriageHub(store)
        hub.add(LoginRoute("me", "me", None), cast(Engine, engine))
        store.note_hold_mailboxes("me", ["Old hold"], T0)
        first = store.request_delivery("me", "<m@x>", T0)
        serving = asyncio.create_task(hub._serve_asks())
        try:
            await asyncio.sleep(0.1)  # not connected: stays queued, nothing tried
            assert [r.id for r in store.pending_deliveries()] == [first]
            assert seen == []
            engine.ready, engine.worker = True, "worker"
            gone = store.request_delivery("me", "gone@x", T0)
            other = store.request_delivery("someone-else", "m@x", T0)
            async with asyncio.timeout(10):
                while store.pending_deliveries():
                    await asyncio.sleep(0.01)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
        done, refused, unknown = (store.delivery(i) for i in (first, gone, other))
    assert done is not None
    assert (done.outcome, done.detail) == ("delivered", "<m@x> delivered to INBOX (from Later)")
    assert refused is not None
    assert refused.outcome == "refused"
    assert refused.detail == "no held message has Message-ID <gone@x>"
    assert unknown is not None
    assert unknown.outcome == "refused"
    assert "no login 'someone-else'" in (unknown.detail or "")
    assert seen == [("worker", ["Later", "Later/Bulk", "Old hold"], True, {"Later"})] * 2
    assert engine.woken == 1
