"""A feature that lives beside triage in a login's engine: follow-ups, snooze, sla, auto-reply.

The engine owns the connection, the lock and the clock; a part says what it needs of them
through these hooks, each a no-op by default, so a part overrides only what it uses:

- ``start``: at each session start, after the first triage pass (a reply that came while the
  proxy was down is seen before anything falls due): mailboxes, repair of interrupted work;
- ``next_due``: the next moment the part has work by the clock (the engine's nap ends then);
- ``step``: between triage passes, under the engine's lock: the work that is due;
- ``decided``: new INBOX mail was decided and written to the store, before any of it moves;
- ``sent``: the user sent a message (through the SMTP side, or found in Sent);
- ``reconfigured``: the config was reloaded; ``self.settings`` is the new one.

Parts write their own decisions to the state store before they change anything on the server,
like the engine: a crash between two steps is repaired by the next ``start``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ..classifier.mail import Mail
from .engine_settings import EngineSettings
from .state_store import Decision
from .upstream import Upstream

__all__ = ["EnginePart"]


class EnginePart:
    name = "part"

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings

    def __str__(self) -> str:
        return f"{self.name}[{self.settings.login}]"

    async def start(self, worker: Upstream) -> None:
        """A session began (after its first triage pass): prepare, repair."""

    def next_due(self) -> datetime | None:
        """When ``step`` has work by the clock; None: only when woken."""
        return None

    async def step(self, worker: Upstream) -> None:
        """Do what is due now (``self.settings.clock()``); called under the engine's lock."""

    def decided(self, mails: Sequence[Mail], decisions: Sequence[Decision]) -> None:
        """New INBOX mail, decided and in the store (same order), before it is held."""

    def sent(self, mail: Mail, followup: str | None = None) -> None:
        """The user sent ``mail``; ``followup`` is a ``...@followup.invalid`` address's local
        part given with it (the SMTP side), else None."""

    def reconfigured(self, settings: EngineSettings) -> None:
        self.settings = settings
