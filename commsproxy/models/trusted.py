"""Reading a ``.skops`` model without running code: a fixed list of the types our models hold.

A skops file is a zip of a JSON tree (``schema.json``) that names the type of every object in
the model, and numpy arrays stored as ``.npy`` without pickles. Nothing in it is constructed
before the whole tree has been checked. skops trusts many types by default (every
scikit-learn estimator, for one); commsproxy trusts fewer: before skops sees the file, every
node of the tree is checked against :data:`TRUSTED_TYPES`, exactly the types that the urgency
and accounts pipelines (classifier/pipeline.py) are made of, and the same list is what skops is
told to trust. A file naming any other type is refused with that type's name, and nothing of
it is loaded.

After loading, :func:`check_shape` makes sure the object is the Pipeline the rest of
commsproxy expects for the task: the right steps, classes and methods.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from typing import Any

import skops.io
from sklearn.pipeline import Pipeline

__all__ = ["TRUSTED_TYPES", "check_shape", "dumps", "loads", "untrusted_types"]

#: Every type a commsproxy model is made of, as ``module.name`` (what skops writes).
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # containers and scalars of the estimators' parameters and fitted state
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        # numpy arrays (stored as .npy, never pickled), their dtypes and scalars
        "numpy.ndarray",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        # the pipelines and their features (pipeline.py)
        "sklearn.pipeline.Pipeline",
        "sklearn.pipeline.FeatureUnion",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",
        "sklearn.feature_extraction.text.HashingVectorizer",
        "sklearn.feature_extraction.text.TfidfTransformer",
        "sklearn.feature_extraction._hash.FeatureHasher",
        # urgency: log-loss SGD, calibrated with a sigmoid
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        # accounts: a linear SVM
        "sklearn.svm._classes.LinearSVC",
        # commsproxy's own: the feature views the FunctionTransformers call, and the blend
        "commsproxy.classifier.features.text_of",
        "commsproxy.classifier.features.full_text_of",
        "commsproxy.classifier.features.meta_of",
        "commsproxy.classifier.pipeline.Blend",
    }
)

# The kinds of node those types are stored as; any other kind (a method, a partial, an
# operator, a sparse matrix, a random state...) is refused as well.
_LOADERS = frozenset(
    {
        "ObjectNode",
        "DictNode",
        "ListNode",
        "TupleNode",
        "JsonNode",
        "NdArrayNode",
        "FunctionNode",
        "TypeNode",
        "LossNode",
        "CachedNode",
    }
)
_SCHEMA = "schema.json"
# A model's tree is a few hundred nodes; the bound only stops a hostile file's deep nesting.
_MAX_DEPTH = 200


class NotSkopsError(ValueError):
    """The bytes are not a skops file at all (not a zip, no schema, bad JSON)."""


def _schema(data: bytes) -> Any:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            text = archive.read(_SCHEMA)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise NotSkopsError(f"not a .skops file ({exc})") from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise NotSkopsError(f"its {_SCHEMA} is not valid JSON ({exc})") from None


def untrusted_types(data: bytes) -> list[str]:
    """The types (and node kinds) in a skops file that are not in :data:`TRUSTED_TYPES`.

    Reads only the JSON tree; constructs nothing. Raises :class:`NotSkopsError` when the bytes
    are not a skops file.
    """
    found: set[str] = set()
    stack: list[tuple[Any, int]] = [(_schema(data), 0)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise NotSkopsError(f"its tree is nested deeper than {_MAX_DEPTH} levels")
        if isinstance(node, dict):
            if "__loader__" in node or "__class__" in node or "__module__" in node:
                name = f"{node.get('__module__')}.{node.get('__class__')}"
                if name not in TRUSTED_TYPES:
                    found.add(name)
                loader = node.get("__loader__")
                if loader not in _LOADERS:
                    found.add(f"{name} (stored as {loader})")
            stack.extend((value, depth + 1) for value in node.values())
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in node)
    return sorted(found)


def loads(data: bytes) -> object:
    """The model in ``data``; call only after :func:`untrusted_types` found none.

    skops checks the tree again against the same list before it constructs anything.
    """
    return skops.io.loads(data, trusted=sorted(TRUSTED_TYPES))


def dumps(model: object) -> bytes:
    """``model`` as a compressed skops file (hashed feature weights compress well)."""
    data: bytes = skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
    return data


def check_shape(model: object, task: str, labels: Sequence[str]) -> str | None:
    """What is wrong with ``model`` as a model for ``task`` with ``labels``, or None.

    The rest of commsproxy relies on this: a Pipeline whose last step, ``model``, gives
    per-class scores (``predict_proba``, or ``decision_function`` for accounts) over exactly
    the classes the sidecar names, with the features step before it (a blend's parts are such
    Pipelines themselves).
    """
    if not isinstance(model, Pipeline):
        return f"it holds a {type(model).__name__}, not a scikit-learn Pipeline"
    names = [name for name, _ in model.steps]
    final = model.steps[-1][1] if model.steps else None
    # classifier.pipeline.Blend, by name: models/ sits below classifier/ and imports nothing
    # of it; the allowlist already made sure no other class of that name could be loaded.
    if type(final).__name__ == "Blend":
        if names != ["model"]:
            return f"a blend's steps should be ['model'], found {names}"
        for part in getattr(final, "parts", None) or [None]:
            if not isinstance(part, tuple) or len(part) != 3:
                return "a blend's parts should be (name, Pipeline, weight)"
            _, pipeline, weight = part
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                return f"a blend's weight should be a number, found {weight!r}"
            problem = check_shape(pipeline, task, labels)
            if problem is not None:
                return f"a part of its blend: {problem}"
    elif names != ["features", "model"]:
        return f"its steps should be ['features', 'model'], found {names}"
    scores = "predict_proba" if task == "urgency" else "decision_function"
    if not callable(getattr(final, scores, None)) and not callable(
        getattr(final, "predict_proba", None)
    ):
        return f"its model step ({type(final).__name__}) gives no {scores}"
    classes = getattr(final, "classes_", None)
    if classes is None:
        return "its model step is not fitted (no classes)"
    found = sorted(str(c) for c in classes)
    if found != sorted(labels):
        return f"its classes are {found}, its sidecar says {sorted(labels)}"
    return None
