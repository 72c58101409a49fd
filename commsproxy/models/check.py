"""Whether the models ``run`` would load can be loaded: for ``commsproxy check``.

The same choice and the same checks as ``run`` (service.py): the urgency model from
``[triage] model`` (or the user's trained one, else the bundled one), and the accounts model
from ``[accounts] model`` (or the user's trained one, if any). A model that fails says which
file and what to do, so the user learns it from ``check`` rather than from a ``run`` that does
not start.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from .store import ModelInfo

__all__ = ["ModelCheck", "check_models"]


@dataclass(frozen=True)
class ModelCheck:
    what: str  # "[triage] model", "[accounts] model"
    ok: bool
    detail: str  # what the model is, or why it cannot be used (naming the file and the fix)


def check_models(config: Config) -> list[ModelCheck]:
    """Load each model ``run`` would use, as it would; never raises for a bad model."""
    from .store import (
        LEGACY_SUFFIX,
        ModelError,
        describe,
        load_model,
        resolve_model,
        user_model_path,
    )

    checks: list[ModelCheck] = []
    if not config.triage.enabled:
        return checks
    try:
        _, info = resolve_model(config.triage.model, "urgency")
    except ModelError as err:
        checks.append(ModelCheck("[triage] model", False, str(err)))
    else:
        checks.append(
            ModelCheck("[triage] model", True, f"{info.path}: {describe(info)}; {_scored(info)}")
        )

    spec = config.accounts.model
    if spec == "none":
        return checks
    path = Path(spec) if spec is not None else user_model_path("accounts")
    if spec is None and not path.exists() and not path.with_suffix(LEGACY_SUFFIX).exists():
        return checks  # none trained: accounts are filed by the config's rules alone
    try:
        _, info = load_model(path, expected_task="accounts")
    except ModelError as err:
        checks.append(ModelCheck("[accounts] model", False, str(err)))
    else:
        checks.append(
            ModelCheck("[accounts] model", True, f"{info.path}: {describe(info)}; {_scored(info)}")
        )
    return checks


def _scored(info: ModelInfo) -> str:
    """How ``run`` scores the model: with its scoring form (numpy alone) or scikit-learn."""
    if info.scoring_sha256 is not None and info.scoring_path.exists():
        return "run scores it with its scoring form"
    return "run scores it with scikit-learn (no scoring form beside it)"
