"""What the page's buttons call: the user's actions, the same functions the CLI calls.

The page depends only on this protocol; ``run`` hands it the one implementation
(``triage.user_actions.UserActions``), and unit tests a fake.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

__all__ = ["Actions", "Outcome"]


class Outcome(Protocol):
    @property
    def message(self) -> str: ...


class Actions(Protocol):
    async def deliver(self, login: str | None, message_id: str) -> Outcome: ...
    async def release(self, login: str | None, batch: str | None) -> Outcome: ...
    async def always_urgent(self, pattern: str) -> Outcome: ...
    async def never_urgent(self, pattern: str) -> Outcome: ...
    async def forget_sender(self, pattern: str) -> Outcome: ...
    async def focus_off(self, until: datetime) -> Outcome: ...
    async def focus_on(self) -> Outcome: ...
