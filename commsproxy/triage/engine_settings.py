"""What one login's triage engine is set up with: the server, the config and the clock."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ..config import (
    AccountsConfig,
    AutoreplyConfig,
    BatchConfig,
    FollowupConfig,
    SnoozeConfig,
    TriageConfig,
)
from ..endpoints import Endpoint
from ..imap.names import URGENT
from .filer import FilingSetup
from .scheduler import quiet_window

__all__ = ["Clock", "EngineSettings"]

Clock = Callable[[], datetime]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EngineSettings:
    login: str  # the upstream user name, the key in the store
    endpoint: Endpoint
    tls: ssl.SSLContext
    triage: TriageConfig
    batches: tuple[BatchConfig, ...]
    dry_run: bool = False
    filing: FilingSetup | None = None  # None: no [accounts] to file into
    own_addresses: tuple[str, ...] = ()  # this login's own addresses (for the team hint)
    clock: Clock = field(default=_now)
    connect_timeout: float = 30.0
    # Seconds between looks (one STATUS each) at the hold mailboxes for the user's corrections,
    # when the watcher heard nothing that asks for one sooner.
    look_elsewhere: float = 15.0
    # Sender address -> the local page's "always urgent" link for the digest; None: no page.
    digest_link: Callable[[str], str | None] | None = None
    followup: FollowupConfig = field(default_factory=FollowupConfig)
    snooze: SnoozeConfig = field(default_factory=SnoozeConfig)
    autoreply: AutoreplyConfig = field(default_factory=AutoreplyConfig)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)  # sla, collision, ...
    smtp: Endpoint | None = None  # the login's SMTP server (auto-replies); TLS as ``tls``

    def batch_for(self, label: str, now: datetime | None = None) -> BatchConfig | None:
        """The batch that holds ``label``; inside a quiet batch's window (at ``now``) a label
        no batch holds goes to the quiet batch. Urgent mail is never held."""
        for batch in self.batches:
            if label in batch.labels:
                return batch
        if now is not None and label != URGENT:
            for batch in self.batches:
                if batch.quiet and quiet_window(batch.quiet, batch.schedule.zone, now):
                    return batch
        return None
