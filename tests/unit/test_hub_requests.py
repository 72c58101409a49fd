"""``release --now`` served by the hub: a request is done only when every batch it names is."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from commsproxy.triage import hub as hub_module
from commsproxy.triage.engine import Engine
from commsproxy.triage.hub import LoginRoute, TriageHub
from commsproxy.triage.state_store import StateStore


class FlakyEngine:
    """Releases batch by batch; the first release of ``bulk`` fails as a cut link would."""

    def __init__(self) -> None:
        batches = [SimpleNamespace(name="later"), SimpleNamespace(name="bulk")]
        self.settings = SimpleNamespace(batches=batches)
        self.released: list[str | None] = []
        self.failures_left = 1

    async def release(self, batch_name: str | None = None) -> dict[str, int]:
        if batch_name == "bulk" and self.failures_left:
            self.failures_left -= 1
            raise ConnectionError("connection lost")
        self.released.append(batch_name)
        return {str(batch_name): 1}


async def test_a_request_stays_queued_until_every_batch_is_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy.triage")
    monkeypatch.setattr(hub_module, "_REQUEST_POLL", 0.01)
    monkeypatch.setattr(hub_module, "_REQUEST_RETRY_MAX", 0.05)
    with StateStore.open(tmp_path) as store:
        hub = TriageHub(store)
        engine = FlakyEngine()
        hub.add(LoginRoute("me", "me", None), cast(Engine, engine))
        store.request_release(None, None, datetime.now(UTC))
        serving = asyncio.create_task(hub._serve_asks())
        try:
            async with asyncio.timeout(10):
                while store.pending_release_requests():
                    await asyncio.sleep(0.01)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    assert engine.released == ["later", "bulk"]  # later once, bulk after its retry
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    assert "requested release of bulk failed: connection lost; trying again in" in errors[0]
