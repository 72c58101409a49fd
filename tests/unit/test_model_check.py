"""``commsproxy check`` loads the models ``run`` would use and names a failing file and its fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import joblib
import pytest

from commsproxy.check import LoginCheck, Outcome, ServerCheck, report
from commsproxy.config import Config, load_config
from commsproxy.models.check import check_models
from commsproxy.models.store import bundled_model_path


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


def config(tmp_path: Path, text: str = "") -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text + '[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "a"\n')
    return load_config(path, required=True)


def test_the_bundled_model_is_ok(tmp_path: Path) -> None:
    (check,) = check_models(config(tmp_path))
    assert check.what == "[triage] model"
    assert check.ok
    assert check.detail.startswith(f"{bundled_model_path('urgency')}: bundled default urgency")
    assert check.detail.endswith("; run scores it with its scoring form")


def test_an_old_joblib_model_fails_and_names_the_fix(tmp_path: Path) -> None:
    old = tmp_path / "mine.joblib"
    joblib.dump({"not": "a model"}, old)
    checks = check_models(config(tmp_path, f'[triage]\nmodel = "{old}"\n'))
    assert [c.ok for c in checks] == [False]
    assert f"commsproxy models migrate {old}" in checks[0].detail

    login = LoginCheck("a", ServerCheck(None, Outcome.OK), ServerCheck(None, Outcome.SKIPPED))
    login.models = checks
    assert login.failed
    assert any(line.startswith("  [triage] model: FAILED: model ") for line in report(login))


def test_the_accounts_model_is_checked_when_there_is_one(tmp_path: Path, data_home: Path) -> None:
    assert [c.what for c in check_models(config(tmp_path))] == ["[triage] model"]
    trained = data_home / "commsproxy" / "models" / "accounts.joblib"
    trained.parent.mkdir(parents=True)
    trained.write_bytes(b"")
    checks = check_models(config(tmp_path))
    assert [(c.what, c.ok) for c in checks] == [
        ("[triage] model", True),
        ("[accounts] model", False),
    ]
    assert "commsproxy models migrate" in checks[1].detail

    wrong = tmp_path / "urgency-as-accounts.skops"
    shutil.copy(bundled_model_path("urgency"), wrong)
    shutil.copy(bundled_model_path("urgency").with_suffix(".json"), wrong.with_suffix(".json"))
    checks = check_models(config(tmp_path, f'[accounts]\nmodel = "{wrong}"\n'))
    assert not checks[1].ok
    assert "trained for the urgency task, not accounts" in checks[1].detail
    assert check_models(config(tmp_path, '[accounts]\nmodel = "none"\n'))[1:] == []


def test_nothing_is_loaded_when_triage_is_off(tmp_path: Path) -> None:
    assert check_models(config(tmp_path, '[triage]\nenabled = false\nmodel = "/nope"\n')) == []
