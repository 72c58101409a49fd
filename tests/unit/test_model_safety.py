"""A model file cannot run code: planted pickles, untrusted types and wrong shapes are refused.

The attack: whoever can write a model file can write a matching sidecar (its sha256 has no
key), so a pickle whose ``__reduce__`` runs code would run inside commsproxy. Each test plants
such a file where a model is looked for and checks that the marker its payload would create
never appears, and that the user gets one clear line naming the file, not a traceback.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import joblib
import pytest
import skops.io
from click.testing import CliRunner
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from commsproxy.cli import main
from commsproxy.models import trusted
from commsproxy.models.store import (
    LegacyModelError,
    ModelError,
    NotAModelError,
    UntrustedTypeError,
    WrongTaskError,
    bundled_model_path,
    load_model,
    resolve_model,
)
from tests.mailfactory import START, render


class Evil:
    """Loading this pickle creates the marker file: it stands for any code at all."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the developer's own trained models."""
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.fixture
def message(tmp_path: Path) -> Path:
    path = tmp_path / "m.eml"
    path.write_bytes(
        render(
            {"From": "ann@customer.example", "To": "me@corp.example", "Subject": "the contract",
             "Message-ID": "<c1@customer.example>", "Date": format_datetime(START)},
            "Can you look at the contract today?",
        )
    )  # fmt: skip
    return path


def sidecar_for(model: Path, *, task: str = "urgency", fmt: int = 2) -> Path:
    """A copy of the bundled model's sidecar that vouches for ``model``'s bytes, as an attacker
    who can write both files would make it."""
    data = json.loads(bundled_model_path("urgency").with_suffix(".json").read_text())
    data.update(format=fmt, task=task, sha256=hashlib.sha256(model.read_bytes()).hexdigest())
    if task == "accounts":
        data["labels"] = ["acme", "globex"]
    side = model.with_suffix(".json")
    side.write_text(json.dumps(data))
    return side


def plant_pickle(path: Path, marker: Path, *, task: str = "urgency", fmt: int = 2) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(Evil(marker), path)
    sidecar_for(path, task=task, fmt=fmt)
    return path


def test_the_payload_does_run_code_when_unpickled(tmp_path: Path, marker: Path) -> None:
    """Control: the planted file is a working exploit for anything that unpickles it."""
    joblib.load(plant_pickle(tmp_path / "evil.joblib", marker))
    assert marker.exists()


def assert_clear_refusal(output: str, path: Path, exit_code: int) -> None:
    assert exit_code != 0
    assert "Traceback" not in output
    assert str(path) in output


@pytest.mark.parametrize("name", ["evil.joblib", "evil.skops"])
def test_classify_model_refuses_a_planted_pickle(
    tmp_path: Path, marker: Path, message: Path, name: str
) -> None:
    evil = plant_pickle(tmp_path / name, marker, fmt=1 if name.endswith(".joblib") else 2)
    result = CliRunner().invoke(main, ["classify", "--model", str(evil), str(message)])
    assert not marker.exists()
    assert_clear_refusal(result.output, evil, result.exit_code)
    assert result.output.startswith("Error: --model: ")
    if name.endswith(".joblib"):
        assert f"commsproxy models migrate {evil}" in result.output
        assert "can run code" in result.output
    else:
        assert "is not a commsproxy model: not a .skops file" in result.output


@pytest.mark.parametrize("name", ["evil.joblib", "evil.skops"])
def test_classify_accounts_model_refuses_a_planted_pickle(
    tmp_path: Path, marker: Path, message: Path, name: str
) -> None:
    evil = plant_pickle(tmp_path / name, marker, task="accounts")
    result = CliRunner().invoke(main, ["classify", "--accounts-model", str(evil), str(message)])
    assert not marker.exists()
    assert_clear_refusal(result.output, evil, result.exit_code)
    assert result.output.startswith("Error: --accounts-model: ")


def _run(tmp_path: Path, section: str) -> Any:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[proxy]\nstate_dir = "{tmp_path / "state"}"\n{section}'
        '[[login]]\nupstream_imap = "imap://127.0.0.1:1"\nallow_insecure = true\n'
        'username = "me@example.com"\n'
    )
    return CliRunner().invoke(
        main,
        ["run", "--config", str(config), "--listen", "127.0.0.1:0", "--smtp-listen",
         "127.0.0.1:0", "--no-log-file", "-q"],
    )  # fmt: skip


@pytest.mark.parametrize("name", ["evil.joblib", "evil.skops"])
@pytest.mark.parametrize(("section", "task"), [("triage", "urgency"), ("accounts", "accounts")])
def test_run_refuses_a_planted_pickle_in_the_config(
    tmp_path: Path, marker: Path, name: str, section: str, task: str
) -> None:
    evil = plant_pickle(tmp_path / name, marker, task=task)
    result = _run(tmp_path, f'[{section}]\nmodel = "{evil}"\n')
    assert not marker.exists()
    assert_clear_refusal(result.output, evil, result.exit_code)
    assert f"cannot start triage: [{section}] model: " in result.output


def test_a_trained_joblib_model_in_the_data_dir_is_refused_by_run(
    tmp_path: Path, marker: Path, private_data_dir: Path
) -> None:
    """Even the user's own old model is never loaded by run: the message says what to run."""
    old = plant_pickle(private_data_dir / "commsproxy" / "models" / "urgency.joblib", marker)
    result = _run(tmp_path, "")
    assert not marker.exists()
    assert_clear_refusal(result.output, old, result.exit_code)
    assert "commsproxy models migrate" in result.output
    assert "commsproxy train" in result.output
    with pytest.raises(LegacyModelError):
        resolve_model(None, "urgency")


# --- types and shapes ----------------------------------------------------------------------------


def skops_model(path: Path, model: object, *, task: str = "urgency") -> Path:
    path.write_bytes(skops.io.dumps(model))
    sidecar_for(path, task=task)
    return path


def test_a_skops_file_with_an_untrusted_function_is_refused(tmp_path: Path, marker: Path) -> None:
    """skops itself would load os.system as a function; the allowlist names it and stops."""
    hostile = Pipeline(
        [("features", FunctionTransformer(os.system)), ("model", FunctionTransformer())]
    )
    path = skops_model(tmp_path / "m.skops", hostile)
    with pytest.raises(UntrustedTypeError) as excinfo:
        load_model(path, expected_task="urgency")
    assert "posix.system" in str(excinfo.value) or "nt.system" in str(excinfo.value)
    assert str(path) in str(excinfo.value)


def test_a_skops_file_with_an_estimator_skops_trusts_but_we_do_not_is_refused(
    tmp_path: Path,
) -> None:
    from sklearn.ensemble import RandomForestClassifier

    path = skops_model(tmp_path / "m.skops", RandomForestClassifier(n_estimators=1))
    forest = r"sklearn\.ensemble\._forest\.RandomForestClassifier"
    with pytest.raises(UntrustedTypeError, match=forest):
        load_model(path)


def test_untrusted_types_reads_only_the_tree() -> None:
    assert trusted.untrusted_types(skops.io.dumps({"a": [1, 2.0, "x"]})) == []
    with pytest.raises(trusted.NotSkopsError):
        trusted.untrusted_types(b"PK\x03\x04 not really a zip")


def test_a_skops_file_that_is_not_a_pipeline_is_refused(tmp_path: Path) -> None:
    path = skops_model(tmp_path / "m.skops", {"steps": []})
    with pytest.raises(NotAModelError, match="not a scikit-learn Pipeline"):
        load_model(path)


def test_a_pipeline_without_the_model_step_is_refused(tmp_path: Path) -> None:
    path = skops_model(tmp_path / "m.skops", Pipeline([("features", FunctionTransformer())]))
    with pytest.raises(NotAModelError, match=r"steps should be \['features', 'model'\]"):
        load_model(path)


def test_the_bundled_model_loads_and_is_not_an_accounts_model(tmp_path: Path) -> None:
    model, info = resolve_model("bundled", "urgency")
    assert isinstance(model, Pipeline)
    assert info.bundled
    copy = tmp_path / "copy.skops"
    shutil.copy(info.path, copy)
    sidecar_for(copy)
    with pytest.raises(WrongTaskError, match="urgency task, not accounts"):
        load_model(copy, expected_task="accounts")
    # Its sidecar claiming accounts does not make it one: the classes do not match.
    sidecar_for(copy, task="accounts")
    with pytest.raises(NotAModelError, match="its classes are"):
        load_model(copy, expected_task="accounts")


def test_every_refusal_is_a_model_error(tmp_path: Path, marker: Path) -> None:
    for name in ("a.joblib", "b.skops"):
        with pytest.raises(ModelError):
            load_model(plant_pickle(tmp_path / name, marker))
    assert not marker.exists()
