"""Health of a login's triage (pure), and how the state store keeps it and the notice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from commsproxy.triage.health import Health, State
from commsproxy.triage.state_store import StateStore

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
AFTER = timedelta(minutes=15)


def test_a_failure_repeated_on_every_retry_is_news_once() -> None:
    health = Health.start("me", T0).moved(State.CONNECTED, T0)
    failed = health.moved(State.SIGNIN_FAILED, T0 + MIN, "refused", "fix it")
    assert failed.is_news(health)
    again = failed.moved(State.SIGNIN_FAILED, T0 + 2 * MIN, "refused", "fix it")
    assert not again.is_news(failed)
    assert again.since == failed.since == T0 + MIN
    other = again.moved(State.SIGNIN_FAILED, T0 + 3 * MIN, "command failed", "fix it")
    assert other.is_news(again)


def test_an_unreachable_server_is_one_state_whatever_each_try_says() -> None:
    lost = Health.start("me", T0).moved(State.UNREACHABLE, T0, "connection lost")
    refused = lost.moved(State.UNREACHABLE, T0 + MIN, "connection refused")
    assert not refused.is_news(lost)
    assert (refused.since, refused.reason) == (T0, "connection refused")


def test_failing_since_spans_failures_of_different_kinds_and_ends_when_it_works() -> None:
    health = Health.start("me", T0).moved(State.UNREACHABLE, T0, "no route")
    health = health.moved(State.SIGNIN_FAILED, T0 + 5 * MIN, "refused")
    assert health.since == T0 + 5 * MIN
    assert health.failing_since == T0
    assert not health.working
    health = health.moved(State.CONNECTED, T0 + 6 * MIN)
    assert health.working
    assert health.failing_since is None
    assert health.reason is None


def test_notice_is_due_after_the_delay_and_at_once_for_a_pause() -> None:
    failing = Health.start("me", T0).moved(State.SIGNIN_FAILED, T0, "refused")
    assert not failing.notice_due(T0 + 14 * MIN, AFTER)
    assert failing.notice_due(T0 + 15 * MIN, AFTER)
    paused = Health.start("me", T0).moved(State.PAUSED, T0, "sign in again")
    assert paused.notice_due(T0, AFTER)
    working = Health.start("me", T0).moved(State.HISTORY, T0)
    assert not working.notice_due(T0 + 60 * MIN, AFTER)


def test_a_restart_keeps_a_failure_and_its_time() -> None:
    failing = Health.start("me", T0).moved(State.SIGNIN_FAILED, T0, "refused")
    restarted = Health.start("me", T0 + 10 * MIN, failing)
    assert restarted == failing
    fine = Health.start("me", T0).moved(State.CONNECTED, T0)
    fine = Health(**{**fine.__dict__, "last_decision": (T0, "bulk, held in bulk")})
    after = Health.start("me", T0 + MIN, fine)
    assert after.state is State.STARTING
    assert after.last_decision == (T0, "bulk, held in bulk")


def test_store_keeps_health_for_status(tmp_path: Path) -> None:
    health = Health(
        "me",
        State.HISTORY,
        T0,
        failing_since=None,
        history=(120, 10_000),
        last_decision=(T0 - MIN, "normal, held in later"),
        next_release=("later", T0 + 60 * MIN),
    )
    with StateStore.open(tmp_path) as store:
        assert store.health("me") is None
        store.save_health(health, 4242, T0)
        assert store.health("me") == (health, 4242, T0)
        failing = health.moved(State.UNREACHABLE, T0 + MIN, "no route", "check it")
        store.save_health(failing, 4242, T0 + MIN)
        assert store.health("me") == (failing, 4242, T0 + MIN)


def test_store_plans_one_notice_and_forgets_it_when_removed(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        planned = store.plan_notice("me", "<n1@commsproxy.localhost>", "refused", T0)
        assert planned.message_id == "n1@commsproxy.localhost"
        assert planned.appended is None
        # A second plan (a retry, a restart) keeps the first: one notice, one Message-ID.
        assert store.plan_notice("me", "n2@x", "other", T0 + MIN) == planned
        store.notice_appended("me", T0 + MIN)
        store.notice_appended("me", T0 + 2 * MIN)  # the first time stays
        notice = store.notice("me")
        assert notice is not None
        assert notice.appended == T0 + MIN
        store.notice_removed("me")
        assert store.notice("me") is None
