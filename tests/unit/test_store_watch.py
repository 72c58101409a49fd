"""The hub's look for requests: a stat of the state file, a query only when it may find news."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from commsproxy.triage import hub as hub_module
from commsproxy.triage.engine import Engine
from commsproxy.triage.hub import LoginRoute, TriageHub
from commsproxy.triage.state_store import StateStore
from commsproxy.triage.store_watch import StoreWatch


def test_a_write_by_another_connection_is_a_change_and_a_quiet_file_is_not(
    tmp_path: Path,
) -> None:
    with StateStore.open(tmp_path) as store, StateStore.open(tmp_path) as other:
        watch = StoreWatch(store.path, clock=lambda: 0.0)
        assert watch.changed()  # the first look always queries
        store.pending_release_requests()
        assert not watch.changed()
        other.request_release(None, None, datetime.now(UTC))
        assert watch.changed()
        assert not watch.changed()


def test_a_query_runs_now_and_then_even_when_the_files_look_the_same(tmp_path: Path) -> None:
    now = [0.0]
    with StateStore.open(tmp_path) as store:
        watch = StoreWatch(store.path, sure_every=10.0, clock=lambda: now[0])
        assert watch.changed()
        now[0] = 9.9
        assert not watch.changed()
        now[0] = 10.0
        assert watch.changed()


class CountingStore:
    """The store, counting the hub's queries for requests."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.path = store.path
        self.queries = 0

    def pending_release_requests(self) -> object:
        self.queries += 1
        return self.store.pending_release_requests()

    def __getattr__(self, name: str) -> object:
        return getattr(self.store, name)


@pytest.mark.parametrize("kernel_events", [True, False], ids=["inotify", "polling"])
async def test_an_idle_hub_does_not_query_and_still_serves_a_request_from_another_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_events: bool
) -> None:
    monkeypatch.setattr(hub_module, "_REQUEST_POLL", 0.01)
    if not kernel_events:  # as on macOS and Windows
        monkeypatch.setattr(hub_module.FileEvents, "open", lambda *_: None)
    released: list[str] = []

    async def release(batch_name: str) -> dict[str, int]:
        released.append(batch_name)
        return {batch_name: 1}

    engine = SimpleNamespace(settings=SimpleNamespace(batches=[SimpleNamespace(name="later")]),
                             release=release)  # fmt: skip
    with StateStore.open(tmp_path) as store, StateStore.open(tmp_path) as cli:
        counting = CountingStore(store)
        hub = TriageHub(cast(StateStore, counting))
        hub.add(LoginRoute("me", "me", None), cast(Engine, engine))
        serving = asyncio.create_task(hub._serve_asks())
        try:
            await asyncio.sleep(0.3)  # some 30 looks with nothing asked
            idle_queries = counting.queries
            cli.request_release(None, None, datetime.now(UTC))  # `commsproxy release --now`
            async with asyncio.timeout(5):
                while cli.pending_release_requests():
                    await asyncio.sleep(0.01)
        finally:
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
    assert idle_queries <= 2  # the first look, not one per look
    assert released == ["later"]
