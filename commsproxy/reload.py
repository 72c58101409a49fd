"""Reloading the config while ``run`` runs: what changed, and what can change without a restart.

``ConfigWatch`` looks at the config file's modification time every few seconds, and at once
when poked (SIGHUP). A changed file is loaded whole; when it has errors the last good config
stays in force and the log says why (the errors name file, line and key). A good one is
compared with the config in force (``changes``): the sender rules (``vip``, ``never_urgent``),
batches, customer accounts and the other triage settings take effect at once, through the
``apply`` callback; listeners, the local page, logins and the models are read only at start, so
for those the log says that a restart is needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load_config
from .looks import when_seen

__all__ = ["Changes", "ConfigWatch", "changes"]

log = logging.getLogger("commsproxy")

#: Triage settings that are read only at start (the gate, the history keeper, the model).
_TRIAGE_AT_START = frozenset(
    {"enabled", "model", "gate_timeout", "history_seconds", "history_messages",
     "history_sent_check"}
)  # fmt: skip

#: The sender rules: the decider takes them from the next decision, nothing starts over.
_RULES = frozenset({"vip", "never_urgent"})


@dataclass(frozen=True)
class Changes:
    """What differs between two configs, in the config's own words (``[triage] vip``)."""

    vip: bool = False  # takes effect with the next decision
    never_urgent: bool = False  # the same
    engines: tuple[str, ...] = ()  # take effect when each login's triage starts over
    restart: tuple[str, ...] = ()  # need `commsproxy run` restarted

    @property
    def live(self) -> tuple[str, ...]:
        rules = (("[triage] vip",) if self.vip else ()) + (
            ("[triage] never_urgent",) if self.never_urgent else ()
        )
        return rules + self.engines

    def __bool__(self) -> bool:
        return bool(self.vip or self.never_urgent or self.engines or self.restart)


def changes(old: Config, new: Config) -> Changes:
    restart = [
        f"[proxy] {f.name}"
        for f in fields(old.proxy)
        if getattr(old.proxy, f.name) != getattr(new.proxy, f.name)
    ]
    if old.logins != new.logins:
        restart.append("[[login]]")
    engines: list[str] = []
    for f in fields(old.triage):
        if f.name in _RULES or getattr(old.triage, f.name) == getattr(new.triage, f.name):
            continue
        (restart if f.name in _TRIAGE_AT_START else engines).append(f"[triage] {f.name}")
    if old.batches != new.batches:
        engines.append("[[batch]]")
    if old.accounts.model != new.accounts.model:
        restart.append("[accounts] model")
    restart += [
        f"[web] {f.name}"
        for f in fields(old.web)
        if getattr(old.web, f.name) != getattr(new.web, f.name)
    ]
    if _without_model(old) != _without_model(new):
        engines.append("[accounts]")
    for table in ("followup", "snooze", "autoreply"):
        if getattr(old, table) != getattr(new, table):
            engines.append(f"[{table}]")
    return Changes(
        old.triage.vip != new.triage.vip,
        old.triage.never_urgent != new.triage.never_urgent,
        tuple(engines),
        tuple(restart),
    )


def _without_model(config: Config) -> object:
    return replace(config.accounts, model=None)


class ConfigWatch:
    """Reloads ``current.path`` when it changes or when poked; ``apply`` puts a good one in force.

    ``apply`` gets the new config and what changed; the watch then counts it as in force.
    """

    def __init__(
        self,
        current: Config,
        apply: Callable[[Config, Changes], Awaitable[None]],
        *,
        interval: float = 2.0,
    ) -> None:
        if current.path is None:
            raise ValueError("a config read from no file cannot be watched")
        self.path: Path = current.path
        self.current = current
        self.interval = interval
        self._apply = apply
        self._poked = asyncio.Event()
        self._seen = self._stamp()

    def poke(self) -> None:
        """Reload now, changed or not (SIGHUP)."""
        self._poked.set()

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = self.path.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def _news(self) -> bool:
        """Whether a reload is due: poked, or the file is there and changed (not gone for a
        moment while an editor saves it). The stat runs in a timer callback (looks.py)."""
        if self._poked.is_set():
            return True
        stamp = self._stamp()
        return stamp is not None and stamp != self._seen

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            looks = when_seen(self.interval, lambda: self._news() or stop.is_set())
            poked = asyncio.ensure_future(self._poked.wait())
            either: list[asyncio.Future[Any]] = [looks, poked]
            try:  # a poke (the page, SIGHUP) reloads at once; a stat finds an edit
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            finally:
                looks.cancel()
                poked.cancel()
            poked_now, stamp = self._poked.is_set(), self._stamp()
            self._poked.clear()
            if stop.is_set() or stamp is None or (stamp == self._seen and not poked_now):
                continue
            self._seen = stamp
            try:
                await self.reload()
            except Exception:
                # A bug in applying must not end the watch, nor the service.
                log.exception("config %s: reloading failed; the last good config stays", self.path)

    async def reload(self) -> bool:
        """Load the file and put it in force; False (and logged why) when it has errors."""
        try:
            new = await asyncio.to_thread(load_config, self.path, required=True)
        except ConfigError as err:
            log.error("config not reloaded, the last good config stays in force: %s", err)
            return False
        found = changes(self.current, new)
        if not found:
            log.info("config %s reloaded: nothing that commsproxy uses changed", self.path)
            return True
        await self._apply(new, found)
        self.current = new
        if found.live:
            log.info("config reloaded: %s in force now", ", ".join(found.live))
        if found.restart:
            log.warning(
                "config reloaded, but restart needed for %s (commsproxy reads it at start)",
                ", ".join(found.restart),
            )
        return True
