"""Hold mailboxes on record that no batch names now (the config moved or removed the batch).

Each is adopted as a batch of its own and released at once: what triage held there goes back
to INBOX, and the mailbox is forgotten once it holds none of triage's mail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from ..config import BatchConfig
from ..imap.names import TRIAGED
from ..schedule import Schedule
from .release import Releaser
from .state_store import StateStore
from .upstream import Upstream

__all__ = ["adopt_left_behind", "holds_mail", "left_behind_batch", "release_left_behind"]

log = logging.getLogger("commsproxy.triage")

_UTC_ZONE = ZoneInfo("UTC")


def left_behind_batch(mailbox: str) -> BatchConfig:
    """A batch for mail held in ``mailbox`` before the config changed: released at once, by
    moving (no re-append, so a redo after a cut never makes a copy), digest as configured."""
    name = f"mail held in {mailbox} before the config changed"
    return BatchConfig(name, mailbox, (), Schedule((), frozenset(), _UTC_ZONE))


def adopt_left_behind(
    releaser: Releaser, store: StateStore, login: str, hold_names: Mapping[str, str]
) -> dict[str, BatchConfig]:
    """Hold mailboxes on record that no batch names now (the config moved or removed
    the batch), each as a batch of its own for the releaser; by mailbox."""
    current = set(hold_names.values())
    left: dict[str, BatchConfig] = {}
    for mailbox in store.hold_mailboxes(login):
        if mailbox not in current:
            left[mailbox] = left_behind_batch(mailbox)
            releaser.adopt(left[mailbox], mailbox)
    return left


async def release_left_behind(
    releaser: Releaser,
    left: dict[str, BatchConfig],
    store: StateStore,
    login: str,
    lock: asyncio.Lock,
    name: str,
) -> None:
    """Mail held in a mailbox the config no longer names goes back to INBOX at once (the
    releaser's usual order: logged, ``$Released``, digest, moved): what triage held there
    (``$Triaged``), never other mail in it. The mailbox is kept on record until it holds
    none, so a release cut short is finished at the next start; it stays on the server.
    ``lock`` is the engine's between-steps lock; ``name`` says whose triage in the log."""
    for mailbox, batch in left.items():
        async with lock:
            if await holds_mail(releaser.worker, mailbox):
                log.info("%s: %s is no batch's hold mailbox now: releasing it", name, mailbox)
                await releaser.release(batch, scheduled=None)
            if not await holds_mail(releaser.worker, mailbox):
                store.forget_hold_mailbox(login, mailbox)


async def holds_mail(worker: Upstream, mailbox: str) -> bool:
    if not await worker.list_mailboxes(mailbox):
        return False
    await worker.examine(mailbox)
    return bool(await worker.search(f"UNDELETED KEYWORD {TRIAGED}"))
