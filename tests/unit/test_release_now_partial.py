"""``release --now`` through ``run`` when ``run`` marks the request done but a release of it
failed (a cut link): the command says which batch was not released instead of claiming it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.config import Config, parse_config_text
from commsproxy.triage.release_now import ReleaseNowError, release_now
from commsproxy.triage.runlock import RunLock
from commsproxy.triage.state_store import StateStore

LOGIN = "me@example.com"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    text = f"""
[proxy]
state_dir = "{tmp_path / "state"}"

[[login]]
username = "{LOGIN}"
upstream_imap = "imaps://imap.example.com"

[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal"]
release = ["12:00"]

[[batch]]
name = "bulk"
mailbox = "Later/Bulk"
labels = ["bulk"]
release = ["12:00"]
"""
    return parse_config_text(tmp_path / "config.toml", text)


@pytest.fixture
def state(config: Config) -> Iterator[Path]:
    with RunLock(config.proxy.state_dir):
        yield config.proxy.state_dir


def serving(state: Path, finished: list[str], started: list[str]) -> Callable[[float], None]:
    """``run`` at its first look: finishes the releases of ``finished``, leaves those of
    ``started`` unfinished, and marks the request done."""

    def sleep(seconds: float) -> None:
        with StateStore.open(state) as store:
            [request] = store.pending_release_requests()
            for batch in finished + started:
                release = store.start_release(LOGIN, batch, None, T0 + timedelta(seconds=1))
                if batch in finished:
                    store.finish_release(release, 2, T0 + timedelta(seconds=2))
            store.complete_release_request(request.id, T0 + timedelta(seconds=2))

    return sleep


def ask(config: Config, sleep: Callable[[float], None]) -> object:
    return release_now(config, None, None, sleep=sleep, clock=lambda: T0, direct=lambda: None)


def test_every_batch_released_is_reported(config: Config, state: Path) -> None:
    done = ask(config, serving(state, ["later", "bulk"], []))
    assert getattr(done, "released", None) == {"later": 2, "bulk": 2}


def test_a_batch_run_never_released_is_named(config: Config, state: Path) -> None:
    with pytest.raises(ReleaseNowError, match=r"did not finish releasing bulk \(its log"):
        ask(config, serving(state, ["later"], []))


def test_a_release_run_left_unfinished_is_named(config: Config, state: Path) -> None:
    with pytest.raises(ReleaseNowError, match=r"did not finish releasing later \("):
        ask(config, serving(state, ["bulk"], ["later"]))
