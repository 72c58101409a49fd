"""The parts each login's engine runs beside triage (engine_part.py), built once per login."""

from __future__ import annotations

from .autoreply import AutoReplies
from .engine_part import EnginePart
from .engine_settings import EngineSettings
from .followups import FollowUps
from .sla import SlaLimits
from .snooze import Snoozes
from .state_store import StateStore

__all__ = ["engine_parts"]


def engine_parts(settings: EngineSettings, store: StateStore) -> list[EnginePart]:
    parts: list[EnginePart] = []
    parts.append(Snoozes(settings, store))
    parts.append(SlaLimits(settings, store))
    parts.append(FollowUps(settings, store))
    parts.append(AutoReplies(settings, store))
    return parts
