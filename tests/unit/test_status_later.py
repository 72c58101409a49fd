"""`commsproxy status` per login: snoozed mail and its next return, sent mail waiting for an
answer and the next reminder, sla deliveries of the last 24 hours and today's auto-replies, in
text (a line each, only when non-zero) and in ``--json``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from commsproxy.cli import main
from commsproxy.triage.state_store import AutoReply, FollowUp, SlaDue, StateStore
from tests.unit.test_triage_cli import CONFIG, LOGIN

ZONE = "Europe/Amsterdam"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("COMMSPROXY_CONFIG", raising=False)
    monkeypatch.setenv("TZ", ZONE)  # the user's zone: "today" and the times shown


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state", login=LOGIN), encoding="utf-8")
    return path


def status(config_file: Path, *args: str) -> Result:
    result = CliRunner().invoke(main, ["status", *args, "--config", str(config_file)])
    assert result.exit_code == 0, result.output
    return result


def fill(state: Path, now: datetime) -> dict[str, datetime]:
    """3 snoozed, 2 waiting for an answer (1 answered), 1 sla delivery in the last 24 h (and
    1 older), 4 auto-replies sent since midnight (and 1 before, 1 failed)."""
    midnight = now.astimezone(ZoneInfo(ZONE)).replace(hour=0, minute=0, second=0, microsecond=0)
    times = {"back": now + timedelta(hours=20), "reminder": now + timedelta(days=2, hours=1)}
    with StateStore.open(state) as store:
        store.note_snoozed(
            LOGIN, "Snoozed/Tomorrow", "Tomorrow", 1, [(1, "<a@x>"), (2, None)], now, times["back"]
        )
        store.note_snoozed(
            LOGIN, "Snoozed/Next week", "Next week", 2, [(1, "<b@x>")], now, now + timedelta(days=7)
        )
        store.note_snoozed(
            "other",
            "Snoozed/Tomorrow",
            "Tomorrow",
            1,
            [(1, "<c@x>")],
            now,
            now + timedelta(hours=1),
        )
        for mid, due in (
            ("w1@x", times["reminder"]),
            ("w2@x", now + timedelta(days=4)),
            ("w3@x", now + timedelta(hours=1)),
        ):
            store.watch_followup(
                FollowUp(
                    LOGIN, mid, ("bo@client.example",), "s", now - timedelta(days=1), due, "waiting"
                )
            )
        store.followup_answered(LOGIN, "w3@x", "bo@client.example", now)
        store.note_sla(
            SlaDue(LOGIN, f"s{n}@x", "later", "Acme", "1h", now - timedelta(days=3), now)
            for n in range(2)
        )
        recent, old = store.sla_pending(LOGIN)
        store.set_sla_state(recent.id, "delivered", now - timedelta(hours=23))
        store.set_sla_state(old.id, "delivered", now - timedelta(hours=25))
        ends = [("sent", midnight + timedelta(minutes=n)) for n in range(4)]
        ends += [("sent", midnight - timedelta(minutes=1)), ("failed", midnight)]
        for n in range(len(ends)):
            store.queue_autoreply(
                AutoReply(
                    LOGIN,
                    f"p{n}@out.example",
                    "d",
                    None,
                    (),
                    "s",
                    "later",
                    now,
                    midnight - timedelta(hours=1),
                )
            )
        for reply, (state, at) in zip(store.autoreplies(LOGIN, "queued"), ends, strict=True):
            store.set_autoreply(reply.id, state, at, 1, at)
    return times


def _soon(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%a %H:%M")


def test_status_text_says_what_waits_for_later(config_file: Path, tmp_path: Path) -> None:
    times = fill(tmp_path / "state", datetime.now(UTC))
    lines = status(config_file).output.splitlines()
    assert f"  snoozed: 3, next back {_soon(times['back'])}" in lines
    assert f"  waiting for an answer: 2, next reminder {_soon(times['reminder'])}" in lines
    assert "  delivered at an account's sla in the last 24 h: 1" in lines
    assert "  auto-replies sent today: 4" in lines


def test_status_json_has_the_same(config_file: Path, tmp_path: Path) -> None:
    times = fill(tmp_path / "state", datetime.now(UTC))
    [login] = json.loads(status(config_file, "--json").output)["logins"]
    assert login["snoozed"] == {
        "count": 3,
        "next_return": times["back"].isoformat(),
        "sla_delivered_24h": 1,
    }
    assert login["waiting_for_answer"] == {
        "count": 2,
        "next_reminder": times["reminder"].isoformat(),
    }
    assert login["autoreplies_sent_today"] == 4


def test_none_of_it_is_said_when_there_is_none(config_file: Path, tmp_path: Path) -> None:
    StateStore.open(tmp_path / "state").close()
    output = status(config_file).output
    for absent in ("snoozed", "waiting for an answer", "sla", "auto-replies"):
        assert absent not in output
    [login] = json.loads(status(config_file, "--json").output)["logins"]
    assert login["waiting_for_answer"] == {"count": 0, "next_reminder": None}
    assert login["autoreplies_sent_today"] == 0


def test_a_time_a_week_or_more_away_has_its_date(config_file: Path, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    with StateStore.open(tmp_path / "state") as store:
        far = now + timedelta(days=9)
        store.note_snoozed(LOGIN, "Snoozed/Later", "Later", 1, [(1, "<a@x>")], now, far)
    expected = far.astimezone(ZoneInfo(ZONE)).strftime("%a %d %b %H:%M")
    assert f"  snoozed: 1, next back {expected}" in status(config_file).output.splitlines()
