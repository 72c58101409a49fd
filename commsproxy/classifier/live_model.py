"""The model ``run`` scores new mail with: its scoring form, else the scikit-learn model.

A model saved with a scoring form (scoring_form.py) is scored from it, with numpy alone: the
same scores, labels and reasons as the scikit-learn Pipeline, in a third of the memory (the
proxy then never imports scikit-learn, scipy or skops). A model without one (saved by an
older commsproxy, or of a shape the form does not cover) is loaded as before, and the log
says once why. A form that fails its checks is refused as the model itself would be.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..models.errors import NotAModelError
from ..models.scoring_file import NoScoringForm, read_scoring
from ..models.store import ModelInfo, load_bundled, load_model, model_choice
from .scoring_form import FormError, ScoringForm

__all__ = ["load_live", "resolve_live"]

log = logging.getLogger(__name__)


def resolve_live(spec: str | Path | None, task: str) -> tuple[Any, ModelInfo]:
    """As store.resolve_model (the same choice of file), preferring the scoring form."""
    path, bundled = model_choice(spec, task)
    return _live(path, task, bundled=bundled)


def load_live(path: Path, task: str) -> tuple[Any, ModelInfo]:
    """As store.load_model, preferring the scoring form."""
    return _live(path, task, bundled=False)


def _live(path: Path, task: str, *, bundled: bool) -> tuple[Any, ModelInfo]:
    try:
        data, info = read_scoring(path, task, bundled=bundled)
    except NoScoringForm as why:
        log.info("%s; it is scored with scikit-learn", why)
        return load_bundled(task) if bundled else load_model(path, expected_task=task)
    try:
        form = ScoringForm.loads(data)
    except FormError as err:
        # Its checksum matched: written by another commsproxy version, not changed since.
        log.info("the scoring form %s cannot be read (%s); the model is scored with "
                 "scikit-learn", info.scoring_path, err)  # fmt: skip
        return load_bundled(task) if bundled else load_model(path, expected_task=task)
    if form.task != task or sorted(form.classes) != sorted(info.labels):
        raise NotAModelError(
            f"the scoring form {info.scoring_path} is for {form.task} with classes "
            f"{sorted(form.classes)}, its sidecar says {task} with {sorted(info.labels)}"
        )
    return form, info
