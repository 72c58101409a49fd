"""What the Model page shows, as plain data: the urgency model in use, when it was trained and
on how much mail, and how often its decisions were corrected this week.

The model is described from the config and its sidecar (``NAME.json`` beside it), as
``commsproxy status`` does: scikit-learn is never loaded for a page.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import Config
from ..triage.state_store import StateStore
from ..triage.status_report import bundled_model_path, describe_model, user_model_path

__all__ = ["ModelNow", "model_facts"]


@dataclass(frozen=True)
class ModelNow:
    described: str  # which model, in words (as `status` says it)
    path: Path | None
    trained: datetime | None
    counts: dict[str, int]  # training messages per label
    sources: tuple[str, ...]
    delivered_urgent: float | None  # validated share of urgent mail delivered at once
    held_other: float | None  # validated share of other mail held
    sidecar_problem: str | None
    week_start: datetime
    decisions_week: int
    corrections_week: dict[str, int]  # kind -> count

    @property
    def corrected(self) -> int:
        return sum(self.corrections_week.values())

    @property
    def corrected_share(self) -> float | None:
        return self.corrected / self.decisions_week if self.decisions_week else None


def _model_path(config: Config) -> Path | None:
    if config.triage.model is not None:
        path = Path(config.triage.model).expanduser()
        return path if path.suffix else path.with_suffix(".skops")
    user = user_model_path()
    return user if user.exists() else bundled_model_path()


def _sidecar(path: Path | None) -> tuple[dict[str, Any], str | None]:
    if path is None:
        return {}, "no model file"
    try:
        data = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        return {}, f"cannot read {path.with_suffix('.json')}: {err}"
    return (data, None) if isinstance(data, dict) else ({}, "the sidecar is not an object")


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _share(metrics: Any, name: str) -> float | None:
    value = metrics.get(name) if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, int | float) else None


def model_facts(config: Config, store: StateStore, now: datetime) -> ModelNow:
    """The model and its week at ``now``. Blocking: call it from a thread."""
    path = _model_path(config)
    data, problem = _sidecar(path)
    trained = None
    if isinstance(data.get("created"), str):
        try:
            trained = datetime.fromisoformat(data["created"]).astimezone()
        except ValueError:
            problem = problem or "the sidecar's training time is not a time"
    training = _mapping(data.get("training"))
    counts = _mapping(training.get("counts"))
    sources = training.get("sources")
    sources = sources if isinstance(sources, list) else []
    metrics = data.get("metrics", {})
    local = now.astimezone()
    monday = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
        days=local.weekday()
    )
    decided = sum(store.held_counts_since(monday))
    kinds = Counter(c.kind for c in store.corrections_since(monday, limit=100_000))
    return ModelNow(
        described=describe_model(config),
        path=path,
        trained=trained,
        counts={str(k): int(v) for k, v in counts.items() if isinstance(v, int)},
        sources=tuple(str(s) for s in sources),
        delivered_urgent=_share(metrics, "urgent_delivered"),
        held_other=_share(metrics, "other_held"),
        sidecar_problem=problem,
        week_start=monday,
        decisions_week=decided,
        corrections_week=dict(kinds),
    )
