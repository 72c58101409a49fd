"""Converting a ``.joblib`` model an older commsproxy wrote into a ``.skops`` one, once.

A ``.joblib`` file is a pickle, and loading a pickle runs whatever code it names; its sidecar's
checksum cannot tell the user's model from a planted one. So this is the one place commsproxy
loads a pickle, and only for a file the user has said is theirs (``commsproxy models migrate``
asks first). Everything that can be checked without loading is checked before: the sidecar,
the checksum, the scikit-learn series, the task. The loaded model must then be exactly of the
trusted types and the task's shape (trusted.py), or nothing is written. The old files are kept,
renamed to ``NAME.old.joblib`` and ``NAME.old.json``, never deleted.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import sklearn

from .errors import IncompatibleModelError, ModelError, TamperedModelError
from .store import (
    LEGACY_FORMAT,
    LEGACY_SUFFIX,
    MODEL_SUFFIX,
    SIDECAR_SUFFIX,
    TASKS,
    ModelInfo,
    read_sidecar,
    save_model,
    user_model_path,
)

__all__ = ["Migration", "convert", "legacy_user_models", "plan"]

_RETRAIN = "train a new model with `commsproxy train` instead"


@dataclass(frozen=True)
class Migration:
    """One old model, what its sidecar says, and where each file goes."""

    old: Path  # NAME.joblib
    info: ModelInfo  # its sidecar (format 1), checked
    new: Path  # NAME.skops (its sidecar: NAME.json)
    kept: Path  # NAME.old.joblib
    kept_sidecar: Path  # NAME.old.json


def legacy_user_models() -> list[Path]:
    """The ``.joblib`` models ``commsproxy train`` wrote in the data dir before ``.skops``."""
    found = [user_model_path(task).with_suffix(LEGACY_SUFFIX) for task in TASKS]
    return [path for path in found if path.exists() and not path.with_suffix(MODEL_SUFFIX).exists()]


def _series(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


def plan(path: Path) -> Migration:
    """Check an old model without loading it; raises a ModelError saying what is wrong."""
    old = path.expanduser()
    if old.suffix != LEGACY_SUFFIX:
        raise ModelError(f"{old} is not a .joblib model: only .joblib models need converting")
    if not old.is_file():
        raise ModelError(f"no model at {old}")
    new = old.with_suffix(MODEL_SUFFIX)
    if new.exists():
        # Converted before, or trained since (train wrote the sidecar NAME.json over the old
        # one's): converting would replace the newer model with the older.
        raise ModelError(
            f"{new} exists already, so {old} is not converted (that would replace it); "
            f"{old} is no longer used: keep it or delete it"
        )
    info = read_sidecar(old, expected_format=LEGACY_FORMAT)
    if info.task not in TASKS:
        raise ModelError(f"model {old} is for an unknown task {info.task!r}: {_RETRAIN}")
    running = str(sklearn.__version__)
    if _series(info.sklearn_version) != _series(running):
        raise IncompatibleModelError(
            f"model {old} was trained with scikit-learn {info.sklearn_version}, this is "
            f"{running}, so it cannot be converted: {_RETRAIN}"
        )
    _check_sum(old, old.read_bytes(), info)
    stem = old.with_suffix("")
    kept = stem.with_name(stem.name + ".old" + LEGACY_SUFFIX)
    kept_sidecar = kept.with_suffix(SIDECAR_SUFFIX)
    for taken in (kept, kept_sidecar):
        if taken.exists():
            raise ModelError(
                f"cannot keep {old} as {taken}: that file exists already; move it away first"
            )
    return Migration(old, info, new, kept, kept_sidecar)


def _check_sum(path: Path, data: bytes, info: ModelInfo) -> None:
    if hashlib.sha256(data).hexdigest() != info.sha256:
        raise TamperedModelError(
            f"model {path} does not match the checksum written when it was trained, so it is "
            f"not loaded: if you did not replace it yourself, find out who did; {_RETRAIN}"
        )


def convert(migration: Migration) -> ModelInfo:
    """Load the old model (a pickle: the caller has the user's consent) and save it as .skops.

    The old pair is renamed first (the new sidecar takes the old one's name) and put back if
    anything fails, so the user always has one working pair.
    """
    import joblib

    old, info = migration.old, migration.info
    data = old.read_bytes()
    _check_sum(old, data, info)  # the bytes that are loaded are the bytes checked
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # an unreadable pickle: say so, no traceback
        raise IncompatibleModelError(
            f"model {old} could not be loaded ({type(exc).__name__}: {exc}): {_RETRAIN}"
        ) from None
    os.replace(old, migration.kept)
    os.replace(info.sidecar_path, migration.kept_sidecar)
    try:
        return save_model(
            model,
            migration.new,
            task=info.task,
            labels=info.labels,
            training={**info.training, "converted_from": str(old)},
            metrics=info.metrics,
            threshold=info.threshold,
            thresholds=info.thresholds,
            created=info.created,
        )
    except BaseException:
        os.replace(migration.kept, old)
        os.replace(migration.kept_sidecar, info.sidecar_path)
        raise
