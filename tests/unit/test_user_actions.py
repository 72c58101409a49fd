"""The one-click actions' checks before anything happens, and the deliver request's life in the
state store, with the server side replaced (the real one is in tests/integration)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from commsproxy.config import load_config
from commsproxy.triage.deliver_now import (
    Delivered,
    DeliverNowError,
    NotHeld,
    deliver_now,
    normalize_message_id,
    resolve_login,
)
from commsproxy.triage.runlock import RunLock
from commsproxy.triage.state_store import Decision, DeliverRequest, StateStore
from commsproxy.triage.user_actions import ActionError, UserActions

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

TWO_LOGINS = """
[proxy]
state_dir = "{state}"

[[login]]
username = "alice@example.com"
upstream_imap = "imaps://imap.example.com"

[[login]]
username = "bob@example.com"
upstream_imap = "imaps://imap.example.com"

[triage]
vip = ["boss@example.com"]  # kept

[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal", "bulk"]
release = ["16:30"]
"""


def two_logins(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(TWO_LOGINS.format(state=tmp_path / "state"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "bare"),
    [("<a.b@x.example>", "a.b@x.example"), (" a.b@x.example ", "a.b@x.example")],
)
def test_message_ids_with_or_without_brackets(text: str, bare: str) -> None:
    assert normalize_message_id(text) == bare


@pytest.mark.parametrize("bad", ["", "<>", "a b@x", "a\r\nb", "<a@x", "é@x.example"])
def test_bad_message_ids_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="Message-ID"):
        normalize_message_id(bad)


def test_the_login_is_named_or_found_in_the_store(tmp_path: Path) -> None:
    config = load_config(two_logins(tmp_path))
    assert resolve_login(config, None, "Bob@Example.com", "m@x") == "bob@example.com"
    with pytest.raises(ValueError, match="no \\[\\[login\\]\\] with username 'carol'"):
        resolve_login(config, None, "carol", "m@x")
    with StateStore.open(tmp_path / "state") as store:
        with pytest.raises(ValueError, match="say which with --login"):
            resolve_login(config, store, None, "m@x")
        store.record_decisions([
            Decision("bob@example.com", "INBOX", 1, 5, "m@x", "normal", 0.1, "r", "later",
                     True, "s@x.example", "Subject", T0),
        ])  # fmt: skip
        assert resolve_login(config, store, None, "<m@x>") == "bob@example.com"


def test_deliver_refuses_bad_input_before_queuing(tmp_path: Path) -> None:
    actions = UserActions(load_config(two_logins(tmp_path)))
    with pytest.raises(ActionError, match="not a Message-ID"):
        asyncio.run(actions.deliver(None, "not an id"))
    with pytest.raises(ActionError, match="--login"):
        asyncio.run(actions.deliver(None, "<m@x>"))
    with StateStore.open(tmp_path / "state") as store:
        assert store.pending_deliveries() == []


def test_without_run_a_message_not_held_is_refused_and_the_request_closed(
    tmp_path: Path,
) -> None:
    config = load_config(two_logins(tmp_path))

    async def not_held(_config: object, request: DeliverRequest) -> str:
        raise NotHeld(f"<{request.message_id}> is in INBOX already: it is not held")

    with pytest.raises(DeliverNowError, match="in INBOX already"):
        asyncio.run(deliver_now(config, "alice@example.com", "<m@x>", direct=lambda: not_held))
    with StateStore.open(tmp_path / "state") as store:
        assert store.pending_deliveries() == []
        request = store.delivery(1)
        assert request is not None
        assert request.outcome == "refused"


def test_without_run_a_failure_keeps_the_request_for_run(tmp_path: Path) -> None:
    config = load_config(two_logins(tmp_path))

    async def cut(_config: object, request: DeliverRequest) -> str:
        raise OSError("connection reset")

    with pytest.raises(DeliverNowError, match="stays queued"):
        asyncio.run(deliver_now(config, "alice@example.com", "m@x", direct=lambda: cut))
    with StateStore.open(tmp_path / "state") as store:
        [pending] = store.pending_deliveries()
        assert (pending.login, pending.message_id) == ("alice@example.com", "m@x")


def test_through_run_the_asker_waits_without_blocking_and_gets_runs_answer(
    tmp_path: Path,
) -> None:
    config = load_config(two_logins(tmp_path))
    state = tmp_path / "state"
    looks: list[float] = []

    async def run_serves(seconds: float) -> None:
        """Stands in for run's hub: on the second look the request is served."""
        looks.append(seconds)
        if len(looks) == 2:
            with StateStore.open(state) as store:
                [request] = store.pending_deliveries()
                store.start_delivery(request.id, "Later", T0)
                store.complete_delivery(request.id, "delivered", "<m@x> delivered", T0)

    with RunLock(state):
        done = asyncio.run(
            deliver_now(config, "bob@example.com", "<m@x>", sleep=run_serves, clock=lambda: T0)
        )
    assert (done.by, done.detail) == ("run", "<m@x> delivered")
    assert len(looks) == 2
    with StateStore.open(state) as store:
        delivered = store.delivered_since("bob@example.com", T0 - timedelta(seconds=1))
        assert [d.message_id for d in delivered] == ["m@x"]


def test_through_run_a_refusal_comes_back_as_the_error(tmp_path: Path) -> None:
    config = load_config(two_logins(tmp_path))
    state = tmp_path / "state"

    async def run_refuses(seconds: float) -> None:
        with StateStore.open(state) as store:
            for request in store.pending_deliveries():
                store.complete_delivery(request.id, "refused", "no held message has it", T0)

    with RunLock(state), pytest.raises(DeliverNowError, match="no held message has it"):
        asyncio.run(deliver_now(config, "bob@example.com", "m@x", sleep=run_refuses))


def test_sender_rules_through_the_actions(tmp_path: Path) -> None:
    path = two_logins(tmp_path)
    poked: list[bool] = []
    actions = UserActions(load_config(path), config_saved=lambda: poked.append(True))
    done = asyncio.run(actions.always_urgent("CEO@Example.com"))
    assert "ceo@example.com is always urgent now" in done.message
    assert asyncio.run(actions.never_urgent("*@noisy.example")).message.startswith(
        "*@noisy.example is never urgent now"
    )
    assert "no rule now" in asyncio.run(actions.forget_sender("ceo@example.com")).message
    assert poked == [True, True, True]
    triage = load_config(path).triage
    assert triage.vip == ("boss@example.com",)
    assert triage.never_urgent == ("*@noisy.example",)
    assert 'vip = ["boss@example.com"]  # kept' in path.read_text(encoding="utf-8")
    with pytest.raises(ActionError, match="not a sender pattern"):
        asyncio.run(actions.always_urgent("boss"))
    assert len(poked) == 3


def test_release_and_focus_refuse_bad_input(tmp_path: Path) -> None:
    actions = UserActions(load_config(two_logins(tmp_path)), clock=lambda: T0)
    with pytest.raises(ActionError, match="no batch 'soon'"):
        asyncio.run(actions.release(None, "soon"))
    with pytest.raises(ActionError, match="no \\[\\[login\\]\\] with username 'carol'"):
        asyncio.run(actions.release("carol", None))
    with pytest.raises(ActionError, match="has passed already"):
        asyncio.run(actions.focus_off(T0 - timedelta(minutes=1)))
    with pytest.raises(ActionError, match="time zone"):
        asyncio.run(actions.focus_off(datetime(2026, 12, 8, 9, 0)))
    assert not (tmp_path / "state" / "holding-stopped").exists()
    assert "was on already" in asyncio.run(actions.focus_on()).message


def test_deliver_names_the_mail_by_subject_and_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(two_logins(tmp_path))
    state = tmp_path / "state"
    with StateStore.open(state) as store:
        store.record_decisions([
            Decision("bob@example.com", "INBOX", 1, 5, "m@x", "normal", 0.1, "r", "later",
                     True, "bert@partner.example", "Re: budget draft", T0),
        ])  # fmt: skip

    async def run_serves(seconds: float) -> None:
        with StateStore.open(state) as store:
            [request] = store.pending_deliveries()
            store.start_delivery(request.id, "Later", T0)
            store.complete_delivery(request.id, "delivered", "<m@x> delivered to INBOX", T0)

    with RunLock(state):
        done = asyncio.run(deliver_now(config, None, "<m@x>", sleep=run_serves, clock=lambda: T0))
    assert (done.sender, done.subject) == ("bert@partner.example", "Re: budget draft")

    # The words the CLI prints and the page flashes: the subject and sender, not the ID.
    import commsproxy.triage.user_actions as user_actions

    async def delivered(*args: object, **kwargs: object) -> Delivered:
        return done

    monkeypatch.setattr(user_actions, "deliver_now", delivered)
    said = asyncio.run(UserActions(config, state_dir=state).deliver(None, "m@x")).message
    assert said.startswith(
        "\u201cRe: budget draft\u201d from bert@partner.example is in your INBOX"
    )
    assert "m@x" not in said

    # Unknown subject (no decision for it): the Message-ID says which.
    bare = Delivered(1, "direct", "<n@x> delivered to INBOX (from Later)")

    async def unknown(*args: object, **kwargs: object) -> Delivered:
        return bare

    monkeypatch.setattr(user_actions, "deliver_now", unknown)
    said = asyncio.run(UserActions(config, state_dir=state).deliver(None, "n@x")).message
    assert said.startswith("<n@x> delivered to INBOX")
