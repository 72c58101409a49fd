"""Focus off until a time: the switch records ``until``, holding resumes by itself then, and
``--until`` reads HH:MM (today, or tomorrow when past) or an ISO time. Time is a parameter."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from commsproxy.cli import main
from commsproxy.config import Config, ProxyConfig
from commsproxy.triage import holding
from commsproxy.triage.holding import (
    SWITCH,
    UntilError,
    holding_stopped,
    holding_switch,
    parse_until,
    start_holding,
    stop_holding,
)
from commsproxy.triage.release_now import Released
from commsproxy.triage.status_report import holding_json

AMS = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # 10:00 in Amsterdam


def test_hh_mm_is_today_or_tomorrow_when_past() -> None:
    assert parse_until("14:00", NOW, AMS) == datetime(2026, 12, 7, 13, 0, tzinfo=UTC)
    assert parse_until(" 9:30 ", NOW, AMS) == datetime(2026, 12, 8, 8, 30, tzinfo=UTC)
    assert parse_until("10:00", NOW, AMS) == datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # now: next


def test_iso_times_with_and_without_a_zone() -> None:
    assert parse_until("2026-12-07T14:00", NOW, AMS) == datetime(2026, 12, 7, 13, tzinfo=UTC)
    assert parse_until("2026-12-07T14:00+00:00", NOW, AMS) == datetime(2026, 12, 7, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("25:00", "00:00 to 23:59"),
        ("12:60", "00:00 to 23:59"),
        ("soon", "expected HH:MM"),
        ("2026-12-07T09:00", "has passed"),
        ("", "expected HH:MM"),
    ],
)
def test_bad_times_are_refused(text: str, says: str) -> None:
    with pytest.raises(UntilError, match=says):
        parse_until(text, NOW, AMS)


def _config(state: Path) -> Config:
    return Config(proxy=ProxyConfig(state_dir=state))


def _no_release(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []

    def release(config: Config, login: str | None, batch: str | None, **_: object) -> Released:
        calls.append((login, batch))
        return Released(1, "direct", {})

    monkeypatch.setattr(holding, "release_now", release)
    return calls


def test_the_switch_runs_out_by_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _no_release(monkeypatch)
    until = NOW + timedelta(hours=2)
    stopped = stop_holding(_config(tmp_path), clock=lambda: NOW, until=until)
    assert (stopped.since, stopped.until, stopped.already) == (NOW, until, False)
    assert calls == [(None, None)]  # what is held is released, as stop-holding does
    assert holding_switch(tmp_path) == holding.Switch(NOW, until)
    assert holding_stopped(tmp_path, NOW + timedelta(hours=1)) == NOW
    assert holding_stopped(tmp_path, until - timedelta(microseconds=1)) == NOW
    assert holding_stopped(tmp_path, until) is None  # holding again: no process flipped it
    assert holding_stopped(tmp_path, until + timedelta(days=1)) is None
    assert holding_json(tmp_path, NOW) == {"since": NOW.isoformat(), "until": until.isoformat()}
    assert holding_json(tmp_path, until) is None


def test_a_new_until_replaces_the_old_and_keeps_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_release(monkeypatch)
    stop_holding(_config(tmp_path), clock=lambda: NOW, until=NOW + timedelta(hours=1))
    later = NOW + timedelta(minutes=30)
    again = stop_holding(_config(tmp_path), clock=lambda: later, until=NOW + timedelta(hours=3))
    assert (again.since, again.already) == (NOW, True)
    assert holding_switch(tmp_path) == holding.Switch(NOW, NOW + timedelta(hours=3))
    # Without --until: stopped until start-holding.
    stop_holding(_config(tmp_path), clock=lambda: later)
    assert holding_switch(tmp_path) == holding.Switch(NOW, None)
    assert holding_stopped(tmp_path, NOW + timedelta(days=30)) == NOW


def test_after_a_pause_ran_out_a_stop_starts_anew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_release(monkeypatch)
    stop_holding(_config(tmp_path), clock=lambda: NOW, until=NOW + timedelta(hours=1))
    later = NOW + timedelta(hours=2)
    again = stop_holding(_config(tmp_path), clock=lambda: later, until=later + timedelta(hours=1))
    assert (again.since, again.already) == (later, False)
    assert start_holding(_config(tmp_path), clock=lambda: later) == later
    assert not (tmp_path / SWITCH).exists()
    # start-holding after a pause ran out: holding was on already.
    stop_holding(_config(tmp_path), clock=lambda: later, until=later + timedelta(hours=1))
    assert start_holding(_config(tmp_path), clock=lambda: later + timedelta(hours=2)) is None
    assert not (tmp_path / SWITCH).exists()


def test_status_says_until_when(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    state = tmp_path / "state"
    config.write_text(f'[proxy]\nstate_dir = "{state}"\n', encoding="utf-8")
    state.mkdir()
    now = datetime.now(UTC)
    until = now + timedelta(hours=2)
    (state / SWITCH).write_text(f"{now.isoformat()}\nuntil {until.isoformat()}\n")
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "holding: paused until " in result.output
    data = json.loads(runner.invoke(main, ["status", "--config", str(config), "--json"]).output)
    assert data["holding_until"] == until.isoformat()
    # A pause that ran out is not shown: holding is on again.
    (state / SWITCH).write_text(f"{now.isoformat()}\nuntil {now.isoformat()}\n")
    result = runner.invoke(main, ["status", "--config", str(config)])
    assert "holding:" not in result.output
    data = json.loads(runner.invoke(main, ["status", "--config", str(config), "--json"]).output)
    assert (data["holding_stopped"], data["holding_until"]) == (None, None)


def test_the_cli_names_the_flag_of_a_bad_time(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["stop-holding", "--until", "25:99"])
    assert result.exit_code == 2
    assert "--until" in result.output
    assert "00:00 to 23:59" in result.output
