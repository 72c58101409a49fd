"""The model store: round trips, and refusing every model file it cannot vouch for."""

from __future__ import annotations

import hashlib
import json
import pathlib
import stat
import sys
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.pipeline import Pipeline

import commsproxy
from commsproxy.classifier.features import Sample
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.pipeline import urgency_pipeline
from commsproxy.models import store, trusted
from commsproxy.models.store import (
    IncompatibleModelError,
    LegacyModelError,
    ModelError,
    ModelInfo,
    ModelNotFoundError,
    NotAModelError,
    SidecarError,
    TamperedModelError,
    WrongTaskError,
    bundled_model_path,
    describe,
    load_bundled,
    load_model,
    resolve_model,
    save_model,
    user_model_path,
)


def _sample(label: str, i: int) -> Sample:
    return Sample(
        parse_mail(
            f"From: {label}{i}@example.com\r\nSubject: {label} matter {i}\r\n\r\n"
            f"A message about {label} things.\r\n".encode()
        )
    )


X = [_sample(label, i) for i in range(3) for label in ("normal", "urgent")]
Y = np.array(["normal", "urgent"] * 3)
TRAINING = {"counts": {"urgent": 3, "normal": 3}, "sources": ["test"], "digest": "abc"}
METRICS = {"recall": {"urgent": 1.0}, "precision": {"urgent": 0.75}}


def make_model(c: float = 1e-3, labels: tuple[str, ...] = ("normal", "urgent")) -> Pipeline:
    """A small fitted model of the urgency pipeline's shape, over ``labels``."""
    samples = [_sample(label, i) for i in range(3) for label in labels]
    model = urgency_pipeline(calibrate=False).set_params(model__alpha=c)
    fitted: Pipeline = model.fit(samples, list(labels) * 3)
    return fitted


def save(path: Path, model: object | None = None, **kwargs: Any) -> ModelInfo:
    options: dict[str, Any] = {
        "task": "urgency",
        "labels": ["normal", "urgent"],
        "training": TRAINING,
        "metrics": METRICS,
        "threshold": 0.3,
    }
    options.update(kwargs)
    if model is None:
        model = make_model(labels=tuple(sorted(options["labels"])) or ("normal", "urgent"))
    return save_model(model, path, **options)


def edit_sidecar(path: Path, **changes: Any) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


class Evil:
    """Unpickling this creates the marker file: stands for arbitrary code in a pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (pathlib.Path.touch, (self.marker,))


class Unpicklable:
    """Not a model: saving it is refused before anything is written."""


@pytest.fixture
def data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's data dir under tmp_path, and an empty bundled-model dir."""
    if sys.platform != "linux":
        pytest.skip("XDG_DATA_HOME is how platformdirs finds the data dir on Linux only")
    home = tmp_path / "xdg-data"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    bundled = tmp_path / "bundled"
    bundled.mkdir()
    monkeypatch.setattr(store, "BUNDLED_DIR", bundled)
    return home


# --- round trip ----------------------------------------------------------------------------------


def test_round_trip_preserves_predictions_and_metadata(tmp_path: Path) -> None:
    model = make_model()
    info = save(tmp_path / "m.skops", model)
    loaded, loaded_info = load_model(tmp_path / "m.skops", expected_task="urgency")

    assert isinstance(loaded, Pipeline)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    assert loaded_info == info
    assert info.task == "urgency"
    assert info.labels == ("normal", "urgent")
    assert info.format == store.FORMAT
    assert info.sklearn_version == sklearn.__version__
    assert info.commsproxy_version == commsproxy.__version__
    assert info.python_version == ".".join(map(str, sys.version_info[:3]))
    assert info.created.utcoffset() is not None
    assert info.created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert info.training == TRAINING
    assert info.metrics == METRICS
    assert info.threshold == 0.3
    assert info.path == tmp_path / "m.skops"
    assert info.sidecar_path == tmp_path / "m.json"
    assert info.sha256 == hashlib.sha256((tmp_path / "m.skops").read_bytes()).hexdigest()
    assert not info.bundled


def test_sidecar_is_plain_json_with_every_field(tmp_path: Path) -> None:
    info = save(tmp_path / "m")
    data = json.loads((tmp_path / "m.json").read_text())
    assert set(data) == {
        "format",
        "task",
        "labels",
        "sklearn_version",
        "commsproxy_version",
        "python_version",
        "created",
        "training",
        "metrics",
        "threshold",
        "thresholds",
        "sha256",
        "scoring_sha256",
    }
    assert data == info.sidecar()
    assert data["scoring_sha256"] is None  # saved without a scoring form
    assert data["created"].endswith("+00:00")


def test_path_with_or_without_suffix(tmp_path: Path) -> None:
    info = save(tmp_path / "model")
    assert info.path == tmp_path / "model.skops"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.skops"]
    for given in ("model", "model.skops", "model.json"):
        _, loaded = load_model(tmp_path / given)
        assert loaded.path == tmp_path / "model.skops"


def test_numpy_values_in_summaries_become_plain_json(tmp_path: Path) -> None:
    counts = dict(zip(*np.unique(Y, return_counts=True), strict=True))
    info = save(
        tmp_path / "m",
        labels=make_model().classes_,
        training={"counts": counts},
        metrics={"auc": np.float64(0.5), "curve": np.arange(3)},
        threshold=np.float64(0.25),
    )
    assert info.labels == ("normal", "urgent")
    assert info.training == {"counts": {"normal": 3, "urgent": 3}}
    assert info.metrics == {"auc": 0.5, "curve": [0, 1, 2]}
    assert info.threshold == 0.25
    assert type(info.threshold) is float
    assert load_model(tmp_path / "m")[1] == info


def test_threshold_may_be_null(tmp_path: Path) -> None:
    save(tmp_path / "m", threshold=None)
    assert load_model(tmp_path / "m")[1].threshold is None


def test_rejects_unknown_task_and_empty_labels(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown model task"):
        save(tmp_path / "m", task="spam")
    with pytest.raises(ValueError, match="at least one label"):
        save(tmp_path / "m", labels=[])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_files_are_owner_only(tmp_path: Path) -> None:
    save(tmp_path / "m")
    for name in ("m.skops", "m.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


def test_creates_missing_directories(tmp_path: Path) -> None:
    info = save(tmp_path / "a" / "b" / "m")
    assert info.path.exists()


# --- atomic save ---------------------------------------------------------------------------------


def test_failed_save_leaves_no_partial_file(tmp_path: Path) -> None:
    with pytest.raises(NotAModelError, match="not saved"):
        save(tmp_path / "m", Unpicklable())
    assert list(tmp_path.iterdir()) == []


def test_failed_save_keeps_the_previous_model(tmp_path: Path) -> None:
    info = save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(NotAModelError, match="not saved"):
        save(tmp_path / "m", Unpicklable())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert load_model(tmp_path / "m")[1] == info


def test_save_replaces_an_existing_model(tmp_path: Path) -> None:
    save(tmp_path / "m", make_model(1.0))
    info = save(tmp_path / "m", make_model(0.01))
    model, loaded = load_model(tmp_path / "m")
    assert loaded == info
    assert isinstance(model, Pipeline)
    assert model.named_steps["model"].alpha == 0.01
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.skops"]


def test_unwritable_directory_is_a_model_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ModelError, match="could not save the model"):
        save(tmp_path / "file" / "m")


# --- refusing to load ----------------------------------------------------------------------------


def test_flipped_byte_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m")
    path = tmp_path / "m.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedModelError) as excinfo:
        load_model(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "does not match the checksum written when it was trained" in message


def test_another_valid_model_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m")
    (tmp_path / "m.skops").write_bytes(trusted.dumps(make_model(0.01)))
    with pytest.raises(TamperedModelError):
        load_model(tmp_path / "m")


def test_the_evil_pickle_would_run_code(tmp_path: Path) -> None:
    """Control for the test below: loading this file without the store does run its code."""
    marker = tmp_path / "pwned"
    joblib.dump(Evil(marker), tmp_path / "evil.joblib")
    joblib.load(tmp_path / "evil.joblib")
    assert marker.exists()


def test_malicious_pickle_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    save(tmp_path / "m")
    marker = tmp_path / "pwned"
    joblib.dump(Evil(marker), tmp_path / "m.skops")
    with pytest.raises(TamperedModelError):
        load_model(tmp_path / "m", expected_task="urgency")
    assert not marker.exists()


def test_checks_the_bytes_it_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The file is read once: what is hashed is what is loaded (no swap between the two)."""
    save(tmp_path / "m")
    reads: list[Path] = []
    real_read_bytes = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        reads.append(self)
        return real_read_bytes(self)

    def bytes_only(source: object) -> object:
        assert isinstance(source, bytes), "the model must be loaded from the bytes checked"
        return real_load(source)

    real_load = trusted.loads
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(trusted, "loads", bytes_only)
    load_model(tmp_path / "m")
    assert reads == [tmp_path / "m.skops"]


def test_missing_sidecar_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m")
    (tmp_path / "m.json").unlink()
    with pytest.raises(SidecarError, match=r"has no sidecar .*m\.json.*refusing to load"):
        load_model(tmp_path / "m")


def test_sidecar_that_is_not_json_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(SidecarError, match=r"m\.json is not valid JSON"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("format", "1"),
        ("labels", []),
        ("labels", [1, 2]),
        ("sha256", "xyz"),
        ("sha256", None),
        ("threshold", "0.3"),
        ("created", "yesterday"),
        ("training", []),
        ("task", None),
    ],
)
def test_malformed_sidecar_is_refused(tmp_path: Path, field: str, value: object) -> None:
    save(tmp_path / "m")
    edit_sidecar(tmp_path / "m.json", **{field: value})
    with pytest.raises(SidecarError, match=f"'{field}' should be"):
        load_model(tmp_path / "m")


def test_unknown_format_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m")
    edit_sidecar(tmp_path / "m.json", format=store.FORMAT + 1)
    with pytest.raises(SidecarError, match=r"format 3, written by a newer commsproxy"):
        load_model(tmp_path / "m")


def test_other_sklearn_version_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m")
    edit_sidecar(tmp_path / "m.json", sklearn_version="0.24.2")
    with pytest.raises(IncompatibleModelError) as excinfo:
        load_model(tmp_path / "m")
    message = str(excinfo.value)
    assert f"trained with scikit-learn 0.24.2, this is {sklearn.__version__}" in message
    assert "retrain it with `commsproxy train`" in message
    assert str(tmp_path / "m.skops") in message


def test_patch_release_of_the_same_series_is_accepted(tmp_path: Path) -> None:
    major, minor = sklearn.__version__.split(".")[:2]
    save(tmp_path / "m")
    edit_sidecar(tmp_path / "m.json", sklearn_version=f"{major}.{minor}.99")
    # the sidecar edit changes nothing the checksum covers: only the series is compared
    load_model(tmp_path / "m")


def test_expected_task_mismatch_is_refused(tmp_path: Path) -> None:
    save(tmp_path / "m", task="accounts", labels=["acme", "globex"])
    with pytest.raises(WrongTaskError, match=r"trained for the accounts task, not urgency"):
        load_model(tmp_path / "m", expected_task="urgency")
    assert load_model(tmp_path / "m", expected_task="accounts")[1].task == "accounts"


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no model at"):
        load_model(tmp_path / "nothing")
    save(tmp_path / "m")
    (tmp_path / "m.skops").unlink()
    with pytest.raises(ModelNotFoundError, match="is missing"):
        load_model(tmp_path / "m")


def test_a_file_that_is_not_skops_is_not_a_model(tmp_path: Path) -> None:
    """A file that passes its checksum but is not a skops file at all."""
    save(tmp_path / "m")
    garbage = b"not a skops file at all"
    (tmp_path / "m.skops").write_bytes(garbage)
    edit_sidecar(tmp_path / "m.json", sha256=hashlib.sha256(garbage).hexdigest())
    with pytest.raises(NotAModelError, match=r"is not a commsproxy model: not a \.skops file"):
        load_model(tmp_path / "m")


def test_classes_must_match_the_sidecar(tmp_path: Path) -> None:
    save(tmp_path / "m")
    edit_sidecar(tmp_path / "m.json", labels=["normal", "urgent", "bulk"])
    with pytest.raises(NotAModelError, match="its classes are"):
        load_model(tmp_path / "m")


def test_saving_a_model_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAModelError, match="its classes are"):
        save(tmp_path / "m", make_model(), labels=["acme", "globex"])
    with pytest.raises(NotAModelError, match="not a scikit-learn Pipeline"):
        save(tmp_path / "m", {"steps": []})
    assert list(tmp_path.iterdir()) == []


def test_a_joblib_path_is_saved_as_skops_and_never_loaded(tmp_path: Path) -> None:
    info = save(tmp_path / "m.joblib")
    assert info.path == tmp_path / "m.skops"
    assert not (tmp_path / "m.joblib").exists()
    with pytest.raises(LegacyModelError, match=r"use .*m\.skops instead"):
        load_model(tmp_path / "m.joblib")


# --- where models live ---------------------------------------------------------------------------


def test_user_model_path_honours_platformdirs(data_home: Path) -> None:
    assert user_model_path("urgency") == data_home / "commsproxy" / "models" / "urgency.skops"
    assert user_model_path("accounts").name == "accounts.skops"
    with pytest.raises(ValueError, match="unknown model task"):
        user_model_path("../../etc")


def test_bundled_model_lives_in_the_package() -> None:
    path = bundled_model_path("urgency")
    assert path.name == "default-urgency.skops"
    assert path.parent == Path(store.__file__).resolve().parent


def test_resolve_prefers_the_user_model(data_home: Path) -> None:
    save(bundled_model_path("urgency"), training={"counts": {"urgent": 1}})
    _, info = resolve_model(None, "urgency")
    assert info.bundled
    assert info.path == bundled_model_path("urgency")

    save(user_model_path("urgency"))
    for spec in (None, "default"):
        _, info = resolve_model(spec, "urgency")
        assert not info.bundled
        assert info.path == user_model_path("urgency")
    assert resolve_model("bundled", "urgency")[1].bundled


def test_resolve_explicit_path(data_home: Path, tmp_path: Path) -> None:
    save(user_model_path("urgency"))
    info = save(tmp_path / "mine", model=make_model(0.5))
    for spec in (tmp_path / "mine.skops", str(tmp_path / "mine")):
        assert resolve_model(spec, "urgency")[1] == info
    with pytest.raises(WrongTaskError):
        resolve_model(tmp_path / "mine", "accounts")


def test_resolve_with_nothing_available(data_home: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"no urgency model.*run `commsproxy train`"):
        resolve_model(None, "urgency")
    with pytest.raises(ModelNotFoundError, match=r"no bundled default.*commsproxy train"):
        load_bundled("accounts")


def test_broken_user_model_does_not_fall_back(data_home: Path) -> None:
    save(bundled_model_path("urgency"))
    save(user_model_path("urgency"))
    edit_sidecar(user_model_path("urgency").with_suffix(".json"), sha256="0" * 64)
    with pytest.raises(TamperedModelError):
        resolve_model(None, "urgency")


def test_bundled_model_is_checked_too(data_home: Path) -> None:
    path = bundled_model_path("urgency")
    save(path)
    model, info = load_bundled("urgency")
    assert isinstance(model, Pipeline)
    assert info.bundled

    edit_sidecar(path.with_suffix(".json"), sklearn_version="1.0.0")
    with pytest.raises(IncompatibleModelError) as excinfo:
        load_bundled("urgency")
    message = str(excinfo.value)
    assert "bundled default model" in message
    assert f"built with scikit-learn 1.0.0, this is {sklearn.__version__}" in message
    assert "`commsproxy train`" in message
    assert "scikit-learn==1.0.0" in message

    path.write_bytes(trusted.dumps(make_model(0.01)))
    with pytest.raises(TamperedModelError, match="reinstall commsproxy"):
        load_bundled("urgency")


# --- describe ------------------------------------------------------------------------------------


def test_describe(tmp_path: Path) -> None:
    info = save(
        tmp_path / "m",
        labels=["urgent", "normal", "bulk"],
        training={"counts": {"bulk": 1002, "normal": 2100, "urgent": 310}},
    )
    date = info.created.date().isoformat()
    assert describe(info) == (
        f"urgency model trained {date} on 3,412 messages "
        f"(urgent 310, normal 2,100, bulk 1,002); scikit-learn {sklearn.__version__}"
    )


def test_describe_without_counts_and_with_many_classes(tmp_path: Path) -> None:
    info = save(tmp_path / "a", training={})
    assert describe(info).endswith(
        f"trained {info.created.date()}; scikit-learn {info.sklearn_version}"
    )
    labels = [f"account{i}" for i in range(10)]
    info = save(
        tmp_path / "b",
        task="accounts",
        labels=labels,
        training={"counts": dict.fromkeys(labels, 100)},
    )
    assert "on 1,000 messages in 10 classes;" in describe(info)
