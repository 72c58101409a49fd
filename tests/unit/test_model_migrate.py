"""Trained models round-trip through .skops, and an old .joblib model is converted only with
the user's consent (``commsproxy models migrate``)."""

from __future__ import annotations

import hashlib
import json
import pathlib
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.pipeline import Pipeline

from commsproxy.classifier.features import Sample
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.pipeline import blend_pipeline
from commsproxy.classifier.train import train_accounts, train_urgency
from commsproxy.classifier.workflow import labelled_samples
from commsproxy.cli import main
from commsproxy.models.store import (
    load_bundled,
    load_model,
    resolve_model,
    save_model,
    user_model_path,
)
from tests.mailfactory import START, everyday_mail, render

CONSENT = (
    "Loading a .joblib file can run code; only continue if this file was written by "
    "commsproxy on this machine."
)


@pytest.fixture(autouse=True)
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def urgency_data() -> tuple[list[Sample], list[str]]:
    """A person's mail with their replies (tests/mailfactory.py), labelled as train does."""
    mails = []
    for exchange in everyday_mail(90):
        mails.append(parse_mail(exchange.received))
        if exchange.reply is not None:
            mails.append(parse_mail(exchange.reply))
    sent = {id(m) for m in mails if m.sender == "me@corp.example"}
    _, samples, labels = labelled_samples(mails, lambda m: id(m) in sent)
    return samples, labels


@pytest.fixture(scope="module")
def own_urgency_model(urgency_data: tuple[list[Sample], list[str]]) -> Pipeline:
    samples, labels = urgency_data
    pipeline, _ = train_urgency(samples, labels, prior=None)
    return pipeline


def accounts_samples() -> tuple[list[Sample], list[str]]:
    samples, labels = [], []
    for i in range(60):
        account = ("acme", "globex", "initech")[i % 3]
        headers = {
            "From": f"someone@{account}.example",
            "To": "me@corp.example",
            "Subject": f"{account} order {i}",
            "Message-ID": f"<a{i}@x>",
            "Date": format_datetime(START + timedelta(hours=i)),
        }
        body = f"About the {account} order and its {account} delivery."
        samples.append(Sample(parse_mail(render(headers, body))))
        labels.append(account)
    return samples, labels


def round_trip(tmp_path: Path, pipeline: Pipeline, task: str, labels: list[str]) -> Pipeline:
    save_model(pipeline, tmp_path / task, task=task, labels=labels, training={}, metrics={})
    loaded, info = load_model(tmp_path / task, expected_task=task)
    assert info.path == tmp_path / f"{task}.skops"
    assert isinstance(loaded, Pipeline)
    return loaded


# --- round trips ---------------------------------------------------------------------------------


def test_trained_urgency_model_round_trips(
    tmp_path: Path, own_urgency_model: Pipeline, urgency_data: tuple[list[Sample], list[str]]
) -> None:
    samples, labels = urgency_data
    loaded = round_trip(tmp_path, own_urgency_model, "urgency", sorted(set(labels)))
    assert (loaded.predict_proba(samples) == own_urgency_model.predict_proba(samples)).all()


def test_a_blend_with_the_bundled_model_round_trips(
    tmp_path: Path, own_urgency_model: Pipeline, urgency_data: tuple[list[Sample], list[str]]
) -> None:
    samples, _ = urgency_data
    bundled, info = load_bundled("urgency")
    assert isinstance(bundled, Pipeline)
    blend = blend_pipeline(
        [("yours", own_urgency_model, 0.5), ("bundled", bundled, 0.5)], bulk_from="bundled"
    )
    loaded = round_trip(tmp_path, blend, "urgency", list(info.labels))
    assert (loaded.predict_proba(samples) == blend.predict_proba(samples)).all()


def test_trained_accounts_model_round_trips(tmp_path: Path) -> None:
    samples, labels = accounts_samples()
    pipeline, _ = train_accounts(samples, labels)
    loaded = round_trip(tmp_path, pipeline, "accounts", sorted(set(labels)))
    assert (loaded.decision_function(samples) == pipeline.decision_function(samples)).all()
    assert list(loaded.predict(samples)) == labels


# --- migrate -------------------------------------------------------------------------------------


def write_old_model(path: Path, model: object, labels: list[str], task: str = "urgency") -> Path:
    """A .joblib model and format-1 sidecar, as commsproxy wrote them before .skops."""
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path, compress=3)
    sidecar = {
        "format": 1,
        "task": task,
        "labels": labels,
        "sklearn_version": __import__("sklearn").__version__,
        "commsproxy_version": "0.1.0",
        "python_version": "3.11.7",
        "created": "2026-11-22T10:00:00+00:00",
        "training": {"counts": dict.fromkeys(labels, 30)},
        "metrics": {"validated_on": 18},
        "threshold": 0.2,
        "thresholds": {"urgent": 0.2},
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.fixture
def old_user_model(own_urgency_model: Pipeline) -> Path:
    old = write_old_model(
        user_model_path("urgency").with_suffix(".joblib"),
        own_urgency_model,
        ["urgent", "normal", "bulk"],
    )
    old.with_name("urgency.contacts.json").write_text("{}")
    return old


def migrate(*args: str, answer: str | None = None) -> Any:
    return CliRunner().invoke(main, ["models", "migrate", *args], input=answer)


@pytest.mark.parametrize("answer", ["n\n", "\n", None])
def test_without_consent_nothing_changes(old_user_model: Path, answer: str | None) -> None:
    before = files(old_user_model.parent)
    result = migrate(answer=answer)
    assert result.exit_code != 0
    assert CONSENT in result.output
    assert "Traceback" not in result.output
    assert files(old_user_model.parent) == before


def test_with_consent_the_model_is_converted_and_the_old_one_kept(
    old_user_model: Path,
    own_urgency_model: Pipeline,
    urgency_data: tuple[list[Sample], list[str]],
) -> None:
    old_bytes = old_user_model.read_bytes()
    result = migrate(answer="y\n")
    assert result.exit_code == 0, result.output
    assert CONSENT in result.output
    directory = old_user_model.parent
    assert sorted(files(directory)) == [
        "urgency.contacts.json",
        "urgency.json",
        "urgency.old.joblib",
        "urgency.old.json",
        "urgency.skops",
    ]
    assert (directory / "urgency.old.joblib").read_bytes() == old_bytes
    assert f"kept: {directory / 'urgency.old.joblib'}" in result.output
    model, info = resolve_model(None, "urgency")
    assert info.path == directory / "urgency.skops"
    assert info.threshold == 0.2
    assert info.created.isoformat() == "2026-11-22T10:00:00+00:00"
    assert info.training["converted_from"] == str(old_user_model)
    samples, _ = urgency_data
    assert isinstance(model, Pipeline)
    assert (model.predict_proba(samples) == own_urgency_model.predict_proba(samples)).all()
    # Done once: nothing left to convert.
    again = migrate()
    assert again.exit_code == 0
    assert "nothing to convert" in again.output


def test_a_config_path_is_converted_with_yes(tmp_path: Path, own_urgency_model: Pipeline) -> None:
    old = write_old_model(tmp_path / "models" / "mine.joblib", own_urgency_model, ["a"])
    result = migrate(str(old), "--yes")
    assert result.exit_code != 0  # the sidecar's labels do not match the model's classes
    assert "not saved" in result.output
    assert sorted(files(old.parent)) == ["mine.joblib", "mine.json"]  # put back as it was

    old = write_old_model(
        tmp_path / "models" / "mine.joblib", own_urgency_model, ["urgent", "normal", "bulk"]
    )
    result = migrate(str(old), "--yes")
    assert result.exit_code == 0, result.output
    assert CONSENT not in result.output
    assert f"where your config names {old}, name {old.with_suffix('.skops')}" in result.output
    load_model(old.with_suffix(".skops"), expected_task="urgency")


class Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


def test_a_declined_pickle_is_never_loaded(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    old = write_old_model(tmp_path / "evil.joblib", Evil(marker), ["urgent"])
    result = migrate(str(old), answer="n\n")
    assert result.exit_code != 0
    assert not marker.exists()
    assert not old.with_suffix(".skops").exists()


def test_a_file_that_fails_its_checksum_is_not_loaded_even_with_yes(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    old = write_old_model(tmp_path / "evil.joblib", Evil(marker), ["urgent"])
    joblib.dump(Evil(marker), old, compress=0)  # other bytes than the sidecar vouches for
    result = migrate(str(old), "--yes")
    assert result.exit_code != 0
    assert "does not match the checksum" in result.output
    assert not marker.exists()


def test_a_model_trained_since_is_never_replaced(
    old_user_model: Path, own_urgency_model: Pipeline
) -> None:
    """train wrote urgency.skops (and its urgency.json over the old sidecar): nothing to do."""
    save_model(
        own_urgency_model,
        user_model_path("urgency"),
        task="urgency",
        labels=["urgent", "normal", "bulk"],
        training={},
        metrics={},
    )
    before = files(old_user_model.parent)
    result = migrate("--yes")
    assert result.exit_code == 0
    assert "nothing to convert" in result.output
    result = migrate(str(old_user_model), "--yes")
    assert result.exit_code != 0
    assert "exists already" in result.output
    assert files(old_user_model.parent) == before


def test_only_joblib_files_are_converted(tmp_path: Path) -> None:
    path = tmp_path / "m.skops"
    path.write_bytes(b"")
    result = migrate(str(path), "--yes")
    assert result.exit_code != 0
    assert "is not a .joblib model" in result.output


def test_the_converted_bundled_model_scores_like_a_fresh_load() -> None:
    """The bundled file is skops now; loading it twice gives the same scores (no state)."""
    samples = [Sample(parse_mail(e.received)) for e in everyday_mail(30)]
    first, _ = load_bundled("urgency")
    second, _ = load_bundled("urgency")
    assert isinstance(first, Pipeline)
    assert isinstance(second, Pipeline)
    np.testing.assert_array_equal(first.predict_proba(samples), second.predict_proba(samples))
