"""``release_now``: through a running ``run`` or by itself, with time passed in (no sleeping)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.config import Config, ProxyConfig
from commsproxy.triage.release_now import DirectRelease, ReleaseNowError, release_now
from commsproxy.triage.runlock import RunLock
from commsproxy.triage.state_store import StateStore

LOGIN = "me@example.com"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


class FakeTime:
    """``monotonic`` and ``sleep`` that only move when slept; counts the sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps = 0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def config(state: Path) -> Config:
    return Config(proxy=ProxyConfig(state_dir=state))


@pytest.fixture
def running(state: Path) -> Iterator[None]:
    with RunLock(state):
        yield


def pending(state: Path) -> list[int]:
    with StateStore.open(state) as store:
        return [request.id for request in store.pending_release_requests()]


def no_direct() -> DirectRelease | None:
    raise AssertionError("a running `run` releases; the direct release must not be looked up")


@pytest.mark.usefixtures("running")
def test_through_the_running_run(config: Config, state: Path) -> None:
    clock = FakeTime()
    asked: list[str] = []

    def run_serves(seconds: float) -> None:
        """The second look finds the request served, as ``run`` would serve it."""
        clock.sleep(seconds)
        if clock.sleeps == 2:
            with StateStore.open(state) as store:
                [request] = store.pending_release_requests()
                release = store.start_release(LOGIN, "bulk", None, T0 + timedelta(seconds=1))
                store.finish_release(release, 4, T0 + timedelta(seconds=2))
                store.complete_release_request(request.id, T0 + timedelta(seconds=2))

    done = release_now(
        config,
        None,
        "bulk",
        on_waiting=asked.append,
        direct=no_direct,
        poll=0.5,
        sleep=run_serves,
        monotonic=clock.monotonic,
        clock=lambda: T0,
    )
    assert (done.by, done.released) == ("run", {"bulk": 4})
    assert asked == [f"commsproxy run (pid {os.getpid()})"]
    assert clock.sleeps == 2
    assert pending(state) == []


@pytest.mark.usefixtures("running")
def test_run_that_does_not_answer_leaves_the_request_queued(config: Config, state: Path) -> None:
    clock = FakeTime()
    with pytest.raises(ReleaseNowError, match=r"within 5 s; the request stays queued"):
        release_now(
            config,
            LOGIN,
            None,
            direct=no_direct,
            wait=5.0,
            poll=1.0,
            sleep=clock.sleep,
            monotonic=clock.monotonic,
        )
    assert clock.sleeps == 5
    assert len(pending(state)) == 1


def test_without_run_releases_directly(config: Config, state: Path, tmp_path: Path) -> None:
    calls: list[tuple[Path, str | None, str | None]] = []

    async def release(config: Config, login: str | None, batch: str | None) -> dict[str, int]:
        calls.append((config.proxy.state_dir, login, batch))
        return {"later": 2}

    done = release_now(config, LOGIN, "later", direct=lambda: release)
    assert (done.by, done.released) == ("direct", {"later": 2})
    assert calls == [(state, LOGIN, "later")]
    assert pending(state) == []

    other = tmp_path / "other"
    release_now(config, None, None, state_dir=other, direct=lambda: release)
    assert calls[-1] == (other, None, None)
    assert pending(other) == []


def test_without_run_or_direct_release_the_request_stays_queued(
    config: Config, state: Path
) -> None:
    with pytest.raises(ReleaseNowError, match="start `commsproxy run`"):
        release_now(config, None, None, direct=lambda: None)
    assert len(pending(state)) == 1


def test_direct_failure_leaves_the_request_queued(config: Config, state: Path) -> None:
    async def release(config: Config, login: str | None, batch: str | None) -> dict[str, int]:
        raise ConnectionRefusedError("connection refused")

    with pytest.raises(ReleaseNowError, match="release failed: connection refused; the request"):
        release_now(config, None, None, direct=lambda: release)
    assert len(pending(state)) == 1
