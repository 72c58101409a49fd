"""The stop-holding switch: set before the release, kept across restarts, removed by start."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.cli import main
from commsproxy.config import Config, ProxyConfig
from commsproxy.triage import holding
from commsproxy.triage.holding import SWITCH, holding_stopped, start_holding, stop_holding
from commsproxy.triage.release_now import Released

AT = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


def _config(state: Path) -> Config:
    return Config(proxy=ProxyConfig(state_dir=state))


def test_stop_sets_the_switch_before_releasing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[datetime | None] = []

    def release(config: Config, login: str | None, batch: str | None, **_: object) -> Released:
        seen.append(holding_stopped(tmp_path))  # nothing may be held after this release
        assert (login, batch) == (None, None)  # every login, every batch
        return Released(1, "direct", {"later": 2})

    monkeypatch.setattr(holding, "release_now", release)
    stopped = stop_holding(_config(tmp_path), clock=lambda: AT)
    assert seen == [AT]
    assert (stopped.since, stopped.already, stopped.released.released) == (AT, False, {"later": 2})
    assert stat.S_IMODE((tmp_path / SWITCH).stat().st_mode) == 0o600

    again = stop_holding(_config(tmp_path), clock=lambda: datetime.now(UTC))
    assert (again.since, again.already) == (AT, True)

    assert start_holding(_config(tmp_path)) == AT
    assert holding_stopped(tmp_path) is None
    assert start_holding(_config(tmp_path)) is None


def test_a_switch_that_cannot_be_read_still_means_stopped(tmp_path: Path) -> None:
    (tmp_path / SWITCH).write_text("not a time")
    assert holding_stopped(tmp_path) is not None
    assert holding_stopped(tmp_path / "missing") is None


def test_status_says_holding_is_stopped(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[proxy]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "holding: STOPPED" not in result.output
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / SWITCH).write_text(AT.isoformat() + "\n")
    result = runner.invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "holding: STOPPED since 2026-12-07" in result.output
    assert "`commsproxy start-holding` holds it in batches again" in result.output
    result = runner.invoke(main, ["status", "--config", str(config), "--json"])
    assert json.loads(result.output)["holding_stopped"] == AT.isoformat()
