"""The model store: writes models with a JSON sidecar, and loads only models it can vouch for.

A model is a scikit-learn Pipeline saved whole in skops' format (``NAME.skops``) next to a sidecar
(``NAME.json``) that says what it is: the task, the labels, the scikit-learn, commsproxy and Python
versions, when it was trained and on what, its validation metrics, the decision threshold chosen at
training, and the sha256 of the model file.

Why loading checks so much:

* **A model file must not be able to run code.** Anyone who can put a file where commsproxy looks
  for its model could otherwise run code as the user, inside the proxy that sees all of their
  mail. A sidecar's checksum cannot stop that (whoever writes the model can write a matching
  sidecar), so models are never pickles: a skops file is a JSON tree of named types and plain
  arrays, and it is loaded only when every type in it is one commsproxy's models are made of
  (trusted.py). The bytes are read once, checked and loaded from that same in-memory copy.
  Old ``.joblib`` models (pickles) are refused everywhere; ``commsproxy models migrate``
  converts one, with the user's consent, and that is the only place a pickle is ever loaded.
* **The checksum is integrity**: it stops a model file from being replaced or corrupted on its
  own, or paired with the wrong sidecar.
* **A model pickled or fitted by one scikit-learn version is not guaranteed to work in another.**
  It may load and predict something different without saying so. A mail triage model that
  silently goes wrong hides urgent mail, so a version mismatch is refused with a message that says
  how to fix it: retrain with ``commsproxy train``.
* **A model for one task must not be used for another**: an accounts model asked for urgency would
  produce confident nonsense, so callers say which task they expect, and the loaded object must
  have the steps and classes that task's pipeline has.

Beside the model goes its scoring form when it has one (``NAME.npz``, models/scoring_file.py):
the same model as plain arrays, what ``run`` scores new mail with, without scikit-learn or skops;
its sha256 is in the sidecar too. Reading a sidecar and a scoring form imports neither.

Saving is atomic: the model, its scoring form and the sidecar are written to temporary files in
the target directory and renamed over the old ones, so a crash or an unsavable object never
leaves a half-written model behind. Models are trained on private mail, so the files are created
readable by the owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import platform
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import platformdirs

import commsproxy

from .errors import (
    IncompatibleModelError,
    LegacyModelError,
    ModelError,
    ModelNotFoundError,
    NotAModelError,
    SidecarError,
    TamperedModelError,
    UntrustedTypeError,
    WrongTaskError,
)

__all__ = [
    "COUNTS_KEY",
    "FORMAT",
    "LEGACY_SUFFIX",
    "MODEL_SUFFIX",
    "SCORING_SUFFIX",
    "TASKS",
    "IncompatibleModelError",
    "LegacyModelError",
    "ModelError",
    "ModelInfo",
    "ModelNotFoundError",
    "NotAModelError",
    "SidecarError",
    "TamperedModelError",
    "UntrustedTypeError",
    "WrongTaskError",
    "attach_scoring",
    "bundled_model_path",
    "check_use",
    "checked_sidecar",
    "describe",
    "legacy_path",
    "legacy_refusal",
    "load_bundled",
    "load_checked",
    "load_model",
    "migrate_command",
    "model_choice",
    "read_sidecar",
    "resolve_model",
    "save_model",
    "sidecar_path",
    "user_model_path",
    "write_atomically",
]

#: Version of the on-disk layout: 2 is a .skops model; 1 was a .joblib pickle (migrate only).
FORMAT = 2
LEGACY_FORMAT = 1
#: The tasks a model can be trained for.
TASKS = ("urgency", "accounts")
#: Key in ``training`` holding the number of training messages per label, used by :func:`describe`.
COUNTS_KEY = "counts"

APP = "commsproxy"
MODEL_SUFFIX = ".skops"
LEGACY_SUFFIX = ".joblib"
SIDECAR_SUFFIX = ".json"
#: The scoring form's file beside the model (``NAME.npz``).
SCORING_SUFFIX = ".npz"
#: Where the bundled default models live (``default-<task>.skops`` + ``.json``).
BUNDLED_DIR = Path(__file__).resolve().parent

_RETRAIN = "retrain it with `commsproxy train`"


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    """What a model's sidecar says about it, and where the two files are."""

    path: Path
    sidecar_path: Path
    format: int
    task: str
    labels: tuple[str, ...]
    sklearn_version: str
    commsproxy_version: str
    python_version: str
    created: datetime
    training: Mapping[str, Any]
    metrics: Mapping[str, Any]
    threshold: float | None
    sha256: str
    bundled: bool = False
    # Further named cuts (urgency: "urgent", "urgent_cold", "bulk"); absent in older sidecars.
    thresholds: Mapping[str, float] = field(default_factory=dict)
    # The sha256 of the scoring form saved beside the model (None: the model has none).
    scoring_sha256: str | None = None

    @property
    def scoring_path(self) -> Path:
        """Where the model's scoring form is (when ``scoring_sha256`` says it has one)."""
        return self.path.with_suffix(SCORING_SUFFIX)

    def sidecar(self) -> dict[str, Any]:
        """The sidecar's content, as written to ``NAME.json``."""
        return {
            "format": self.format,
            "task": self.task,
            "labels": list(self.labels),
            "sklearn_version": self.sklearn_version,
            "commsproxy_version": self.commsproxy_version,
            "python_version": self.python_version,
            "created": self.created.isoformat(),
            "training": dict(self.training),
            "metrics": dict(self.metrics),
            "threshold": self.threshold,
            "thresholds": dict(self.thresholds),
            "sha256": self.sha256,
            "scoring_sha256": self.scoring_sha256,
        }


# --- paths ---------------------------------------------------------------------------------------


def _check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown model task {task!r}; expected one of {', '.join(TASKS)}")
    return task


def _model_path(path: str | os.PathLike[str]) -> Path:
    """``NAME``, ``NAME.skops`` or ``NAME.json`` -> ``NAME.skops``; ``NAME.joblib`` stays."""
    p = Path(path).expanduser()
    if p.suffix in (MODEL_SUFFIX, LEGACY_SUFFIX):
        return p
    if p.suffix == SIDECAR_SUFFIX:
        return p.with_suffix(MODEL_SUFFIX)
    return p.with_name(p.name + MODEL_SUFFIX)


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The sidecar that goes with a model path (given with or without ``.skops``)."""
    return _model_path(path).with_suffix(SIDECAR_SUFFIX)


def legacy_path(path: str | os.PathLike[str]) -> Path:
    """The ``.joblib`` model an older commsproxy wrote where ``path`` is now expected."""
    return _model_path(path).with_suffix(LEGACY_SUFFIX)


def migrate_command(path: Path) -> str:
    """The command that converts the ``.joblib`` model at ``path``."""
    return f"commsproxy models migrate {path}"


def legacy_refusal(path: Path) -> LegacyModelError:
    """Why a ``.joblib`` model is not loaded, and exactly what to run instead."""
    converted = path.with_suffix(MODEL_SUFFIX)
    if converted.exists():
        fix = f"it was converted already: use {converted} instead"
    else:
        fix = (
            f"if commsproxy wrote it on this machine, convert it once with "
            f"`{migrate_command(path)}`, or train a new model with `commsproxy train`"
        )
    return LegacyModelError(
        f"model {path} is a .joblib file, which commsproxy no longer loads (a .joblib file is "
        f"a pickle, and loading one can run code): {fix}"
    )


def user_model_path(task: str) -> Path:
    """Where ``commsproxy train`` stores the user's own model for *task* (``TASK.skops``)."""
    _check_task(task)
    return platformdirs.user_data_path(APP) / "models" / f"{task}{MODEL_SUFFIX}"


def bundled_model_path(task: str) -> Path:
    """Where the default model for *task* shipped with the package lives (it may not exist)."""
    _check_task(task)
    return BUNDLED_DIR / f"default-{task}{MODEL_SUFFIX}"


# --- saving --------------------------------------------------------------------------------------


def _jsonable(value: object) -> Any:
    """Make numpy scalars/arrays, paths and datetimes in training summaries JSON-serialisable."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    for method in ("tolist", "item"):  # numpy arrays and scalars
        convert = getattr(value, method, None)
        if callable(convert):
            return convert()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def _plain(name: str, value: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round trip, so ModelInfo holds exactly what a later load will read back."""
    try:
        text = json.dumps(dict(value), default=_jsonable)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"model {name} summary cannot be written as JSON: {exc}") from exc
    result: dict[str, Any] = json.loads(text)
    return result


@contextlib.contextmanager
def _temp_file(target: Path) -> Iterator[tuple[Path, io.BufferedWriter]]:
    """A temporary file next to *target* (so a rename replaces it atomically), owner-only."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield tmp, f
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` whole or not at all (owner-only, durable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _temp_file(path) as (tmp, f):
        f.write(data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model(
    model: object,
    path: Path,
    *,
    task: str,
    labels: Sequence[str],
    training: Mapping[str, Any],
    metrics: Mapping[str, Any],
    threshold: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    created: datetime | None = None,
    scoring: bytes | None = None,
) -> ModelInfo:
    """Save *model* to ``path`` (``.skops`` added if missing) and its sidecar next to it.

    A ``path`` ending in ``.joblib`` is saved as ``.skops`` beside it (the returned info says
    where). Only a model made of the trusted types (trusted.py) and of the task's shape can be
    saved: what cannot be loaded again is refused before anything is written. Both files are
    written to temporary files first and renamed into place only when both are complete, so a
    failure (an unsavable object, a full disk) leaves any previous model intact and no partial
    file behind. ``scoring``: the model's scoring form (classifier/scoring_convert.py), saved
    as ``NAME.npz`` with its checksum in the sidecar; without it, a form an earlier save left
    there is removed. ``training`` should carry ``counts`` (messages per label), the
    sources and a digest of the data; ``metrics`` the validation figures. Returns what was written.
    """
    _check_task(task)
    label_tuple = tuple(str(label) for label in labels)
    if not label_tuple:
        raise ValueError("a model needs at least one label")
    if threshold is not None:
        threshold = float(threshold)
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, not {threshold}")
    named = {str(k): float(v) for k, v in (thresholds or {}).items()}
    if not all(math.isfinite(v) for v in named.values()):
        raise ValueError(f"thresholds must be finite numbers, not {named}")
    training_plain = _plain("training", training)
    metrics_plain = _plain("metrics", metrics)
    data = _serialise(model, task, label_tuple)

    model_path = _model_path(path).with_suffix(MODEL_SUFFIX)
    side_path = model_path.with_suffix(SIDECAR_SUFFIX)
    try:
        model_path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as cleanup:
            with _temp_file(model_path) as (tmp_model, f):
                f.write(data)
            cleanup.callback(tmp_model.unlink, missing_ok=True)
            scoring_path = model_path.with_suffix(SCORING_SUFFIX)
            tmp_scoring: Path | None = None
            if scoring is not None:
                with _temp_file(scoring_path) as (tmp_scoring, f):
                    f.write(scoring)
                cleanup.callback(tmp_scoring.unlink, missing_ok=True)
            info = ModelInfo(
                path=model_path,
                sidecar_path=side_path,
                format=FORMAT,
                task=task,
                labels=label_tuple,
                sklearn_version=_sklearn_version(),
                commsproxy_version=commsproxy.__version__,
                python_version=platform.python_version(),
                created=(created or datetime.now(UTC)).replace(microsecond=0),
                training=training_plain,
                metrics=metrics_plain,
                threshold=threshold,
                thresholds=named,
                sha256=hashlib.sha256(data).hexdigest(),
                scoring_sha256=None if scoring is None else hashlib.sha256(scoring).hexdigest(),
            )
            with _temp_file(side_path) as (tmp_side, f):
                f.write(json.dumps(info.sidecar(), indent=2).encode("utf-8") + b"\n")
            cleanup.callback(tmp_side.unlink, missing_ok=True)
            # Model first: between the two renames the new model sits next to the old sidecar,
            # and a load in that instant is refused by the checksum, never loads a mismatch.
            os.replace(tmp_model, model_path)
            if tmp_scoring is not None:
                os.replace(tmp_scoring, scoring_path)
            os.replace(tmp_side, side_path)
            if tmp_scoring is None:
                scoring_path.unlink(missing_ok=True)
            _fsync_dir(model_path.parent)
    except OSError as exc:
        raise ModelError(f"could not save the model to {model_path}: {exc}") from exc
    return info


def attach_scoring(path: Path, scoring: bytes) -> ModelInfo:
    """Saves ``scoring`` as the scoring form of the model already at ``path``.

    For a model saved before forms existed (the bundled one is converted so, its weights
    unchanged): the model must still match its sidecar's checksum, the form is written first,
    then the sidecar with the form's checksum, each whole or not at all.
    """
    model_path, info, what = checked_sidecar(path, bundled=False)
    try:
        model = model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {what}: {exc}") from exc
    if hashlib.sha256(model).hexdigest() != info.sha256:
        raise TamperedModelError(f"{what} does not match its sidecar's checksum; not converted")
    side = json.loads(info.sidecar_path.read_text(encoding="utf-8"))
    side["scoring_sha256"] = hashlib.sha256(scoring).hexdigest()
    write_atomically(info.scoring_path, scoring)
    write_atomically(info.sidecar_path, json.dumps(side, indent=2).encode("utf-8") + b"\n")
    return read_sidecar(model_path)


def _serialise(model: object, task: str, labels: tuple[str, ...]) -> bytes:
    """The skops bytes of ``model``, after making sure they load back as the same model."""
    from . import trusted

    problem = trusted.check_shape(model, task, labels)
    if problem is not None:
        raise NotAModelError(f"not saved: not a {task} model: {problem}")
    data = trusted.dumps(model)
    unknown = trusted.untrusted_types(data)
    if unknown:
        raise UntrustedTypeError(
            f"not saved: the model holds types commsproxy does not load: {', '.join(unknown)}",
            unknown,
        )
    return data


# --- loading -------------------------------------------------------------------------------------


def _describe_path(path: Path, bundled: bool) -> str:
    return f"the bundled default model {path}" if bundled else f"model {path}"


def read_sidecar(
    model_path: Path, *, bundled: bool = False, expected_format: int = FORMAT
) -> ModelInfo:
    """The sidecar of ``model_path``, checked field by field (reads nothing of the model)."""
    side_path = model_path.with_suffix(SIDECAR_SUFFIX)
    what = _describe_path(model_path, bundled)
    try:
        text = side_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not model_path.exists():
            raise ModelNotFoundError(f"no model at {model_path} (and no {side_path})") from None
        raise SidecarError(
            f"{what} has no sidecar {side_path}; refusing to load it: the sidecar says what "
            f"the model is and carries the checksum written when it was trained; {_RETRAIN}"
        ) from None
    except OSError as exc:
        raise SidecarError(f"cannot read the sidecar {side_path} of {what}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise SidecarError(
            f"the sidecar {side_path} is not valid JSON ({exc}); refusing to load {what}; "
            f"{_RETRAIN}"
        ) from exc
    if not isinstance(data, dict):
        raise SidecarError(f"the sidecar {side_path} is not a JSON object; {_RETRAIN}")

    def bad(field: str, expected: str) -> SidecarError:
        return SidecarError(
            f"the sidecar {side_path} is not a commsproxy model sidecar: {field!r} should be "
            f"{expected}, found {data.get(field)!r}; {_RETRAIN}"
        )

    fmt = data.get("format")
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise bad("format", "an integer")
    if fmt != expected_format:
        newer = "a newer" if fmt > expected_format else "an older"
        raise SidecarError(
            f"the sidecar {side_path} is in format {fmt}, written by {newer} commsproxy; this "
            f"version reads format {expected_format} here: {_RETRAIN} (or use the matching "
            f"commsproxy version)"
        )

    def text_field(field: str) -> str:
        value = data.get(field)
        if not isinstance(value, str) or not value:
            raise bad(field, "a non-empty string")
        return value

    def mapping_field(field: str) -> dict[str, Any]:
        value = data.get(field)
        if not isinstance(value, dict):
            raise bad(field, "a JSON object")
        return value

    labels = data.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise bad("labels", "a non-empty list of strings")
    threshold = data.get("threshold")
    if threshold is not None and (
        isinstance(threshold, bool) or not isinstance(threshold, int | float)
    ):
        raise bad("threshold", "a number or null")
    thresholds = data.get("thresholds", {})
    if not isinstance(thresholds, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in thresholds.values()
    ):
        raise bad("thresholds", "a JSON object of numbers")
    sha256 = text_field("sha256").lower()
    if not _is_digest(sha256):
        raise bad("sha256", "a hex sha256 digest")
    scoring_sha256 = data.get("scoring_sha256")
    if scoring_sha256 is not None:
        if not isinstance(scoring_sha256, str) or not _is_digest(scoring_sha256.lower()):
            raise bad("scoring_sha256", "a hex sha256 digest or null")
        scoring_sha256 = scoring_sha256.lower()
    try:
        created = datetime.fromisoformat(text_field("created"))
    except ValueError:
        raise bad("created", "an ISO 8601 date and time") from None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return ModelInfo(
        path=model_path,
        sidecar_path=side_path,
        format=fmt,
        task=text_field("task"),
        labels=tuple(labels),
        sklearn_version=text_field("sklearn_version"),
        commsproxy_version=text_field("commsproxy_version"),
        python_version=text_field("python_version"),
        created=created,
        training=mapping_field("training"),
        metrics=mapping_field("metrics"),
        threshold=None if threshold is None else float(threshold),
        thresholds={str(k): float(v) for k, v in thresholds.items()},
        sha256=sha256,
        bundled=bundled,
        scoring_sha256=scoring_sha256,
    )


def _is_digest(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def checked_sidecar(path: Path, *, bundled: bool) -> tuple[Path, ModelInfo, str]:
    """The model's path, its sidecar and its name in messages: not a ``.joblib``, and a
    readable sidecar. Imports neither scikit-learn nor skops."""
    model_path = _model_path(path)
    if model_path.suffix == LEGACY_SUFFIX:
        raise legacy_refusal(model_path)
    old = model_path.with_suffix(LEGACY_SUFFIX)
    if not model_path.exists() and old.exists():  # a model trained before .skops
        raise legacy_refusal(old)
    what = _describe_path(model_path, bundled)
    info = read_sidecar(model_path, bundled=bundled)  # before reading the model at all
    return model_path, info, what


def check_use(info: ModelInfo, what: str, expected_task: str | None) -> None:
    """Refuses a model (its file matched its checksum) trained with another scikit-learn
    series, or for another task than ``expected_task``."""
    bundled = info.bundled
    running = _sklearn_version()
    if _series(info.sklearn_version) != _series(running):
        if bundled:
            raise IncompatibleModelError(
                f"{what} was built with scikit-learn {info.sklearn_version}, this is {running}: "
                f"train your own model with `commsproxy train`, or install the matching "
                f"scikit-learn (pip install scikit-learn=={info.sklearn_version})"
            )
        raise IncompatibleModelError(
            f"{what} was trained with scikit-learn {info.sklearn_version}, this is {running}: "
            f"{_RETRAIN}"
        )
    if expected_task is not None and info.task != expected_task:
        raise WrongTaskError(
            f"{what} was trained for the {info.task} task, not {expected_task}: give a model "
            f"trained for {expected_task} instead, or train one with "
            f"`commsproxy train --task {expected_task}`"
        )
    if info.task not in TASKS:
        raise WrongTaskError(f"{what} is for an unknown task {info.task!r}; {_RETRAIN}")


def _sklearn_version() -> str:
    """The installed scikit-learn's version, read without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("scikit-learn")
    except PackageNotFoundError:
        return "none"


def _load(path: Path, expected_task: str | None, *, bundled: bool) -> tuple[object, ModelInfo]:
    model_path, info, what = checked_sidecar(path, bundled=bundled)

    try:
        data = model_path.read_bytes()
    except FileNotFoundError:
        raise ModelNotFoundError(
            f"{what} is missing (its sidecar {info.sidecar_path} is there); {_RETRAIN}"
        ) from None
    except OSError as exc:
        raise ModelError(f"cannot read {what}: {exc}") from exc
    if hashlib.sha256(data).hexdigest() != info.sha256:
        fix = "reinstall commsproxy" if bundled else _RETRAIN
        raise TamperedModelError(
            f"{what} does not match the checksum written when it was trained; refusing to load "
            f"it. If you did not replace it yourself, find out who did; then {fix}"
        )
    check_use(info, what, expected_task)
    return load_checked(data, info, what), info


def load_checked(data: bytes, info: ModelInfo, what: str) -> object:
    """The model in ``data`` (skops bytes), once every type in it is trusted, and its shape."""
    from . import trusted

    try:
        unknown = trusted.untrusted_types(data)
    except trusted.NotSkopsError as exc:
        raise NotAModelError(f"{what} is not a commsproxy model: {exc}; {_RETRAIN}") from None
    if unknown:
        raise UntrustedTypeError(
            f"{what} holds types that commsproxy models never contain, so it is not loaded: "
            f"{', '.join(unknown)}. If you did not put it there, find out who did; then "
            f"{_RETRAIN}",
            unknown,
        )
    try:
        model = trusted.loads(data)
    except Exception as exc:  # whatever skops or numpy raise on a malformed file
        raise IncompatibleModelError(
            f"{what} passed its checks but could not be loaded ({type(exc).__name__}: {exc}); "
            f"it was written by commsproxy {info.commsproxy_version}, this is "
            f"{commsproxy.__version__}: {_RETRAIN}"
        ) from None
    problem = trusted.check_shape(model, info.task, info.labels)
    if problem is not None:
        raise NotAModelError(f"{what} is not a commsproxy {info.task} model: {problem}; {_RETRAIN}")
    return model


def load_model(path: Path, *, expected_task: str | None = None) -> tuple[object, ModelInfo]:
    """Load a model this store saved, after checking its sidecar, checksum and versions.

    Raises a :class:`ModelError` subclass, naming the file and what to do, when the sidecar is
    missing or unreadable (:class:`SidecarError`), the file does not match its checksum
    (:class:`TamperedModelError`), it was trained with another scikit-learn
    (:class:`IncompatibleModelError`) or for another task than *expected_task*
    (:class:`WrongTaskError`), it holds a type no commsproxy model has
    (:class:`UntrustedTypeError`) or is not shaped like the task's model
    (:class:`NotAModelError`), or is an old ``.joblib`` pickle (:class:`LegacyModelError`).
    Nothing is constructed unless the file's types are all trusted; nothing is ever unpickled.
    """
    if expected_task is not None:
        _check_task(expected_task)
    return _load(path, expected_task, bundled=False)


def load_bundled(task: str) -> tuple[object, ModelInfo]:
    """Load the default model for *task* shipped with commsproxy, with the same checks."""
    path = bundled_model_path(task)
    if not path.exists():
        raise ModelNotFoundError(
            f"commsproxy has no bundled default {task} model ({path} is missing): "
            f"train one with `commsproxy train`"
        )
    return _load(path, task, bundled=True)


def resolve_model(spec: str | Path | None, task: str) -> tuple[object, ModelInfo]:
    """The model to use for *task*, as chosen by ``--model`` or the config.

    ``None`` or ``"default"``: the user's trained model if there is one, else the bundled
    default. ``"bundled"``: the bundled default only. Anything else is a path to a model file.
    A user model that exists but fails its checks is an error, not a silent fall back to the
    bundled one: the user trained it and should know it is not being used.
    """
    path, bundled = model_choice(spec, task)
    return _load(path, task, bundled=bundled)


def model_choice(spec: str | Path | None, task: str) -> tuple[Path, bool]:
    """Which model file ``resolve_model`` loads for ``spec``, and whether it is the bundled one."""
    _check_task(task)
    if isinstance(spec, str) and spec.strip() == "bundled":
        path = bundled_model_path(task)
        if not path.exists():
            raise ModelNotFoundError(
                f"commsproxy has no bundled default {task} model ({path} is missing): "
                f"train one with `commsproxy train`"
            )
        return path, True
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "default")):
        user = user_model_path(task)
        if (
            user.exists()
            or user.with_suffix(SIDECAR_SUFFIX).exists()
            or user.with_suffix(LEGACY_SUFFIX).exists()
        ):
            return user, False
        bundled = bundled_model_path(task)
        if bundled.exists():
            return bundled, True
        raise ModelNotFoundError(
            f"no {task} model: none trained yet ({user} does not exist) and commsproxy has no "
            f"bundled default for it; run `commsproxy train` to train one from your mail"
        )
    return Path(spec), False


# --- describing ----------------------------------------------------------------------------------


def _count(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if float(value).is_integer() else None


def describe(info: ModelInfo) -> str:
    """One line for the CLI, e.g. ``urgency model trained 2026-11-22 on 3,412 messages (urgent
    310, normal 2,100, bulk 1,002); scikit-learn 1.9.1``."""
    prefix = "bundled default " if info.bundled else ""
    line = f"{prefix}{info.task} model trained {info.created.date().isoformat()}"
    raw = info.training.get(COUNTS_KEY)
    counts: dict[str, int] = {}
    if isinstance(raw, Mapping):
        ordered = [label for label in info.labels if label in raw]
        ordered += [str(label) for label in raw if label not in info.labels]
        for label in ordered:
            n = _count(raw[label])
            if n is not None:
                counts[label] = n
    if counts:
        line += f" on {sum(counts.values()):,} messages"
        if len(counts) <= 6:
            line += " (" + ", ".join(f"{label} {n:,}" for label, n in counts.items()) + ")"
        else:
            line += f" in {len(counts)} classes"
    return f"{line}; scikit-learn {info.sklearn_version}"


def _series(version: str) -> tuple[str, ...]:
    """A scikit-learn release series ("1.9" of "1.9.1"): patch releases keep the pickled
    estimators' layout, a new series may not, so models are refused across series only."""
    return tuple(version.split(".")[:2])
