"""What ``commsproxy status`` reports, as plain data: per login, health, batches and decisions.

Built from the config, the state store that ``run`` writes and the run lock, never from the
mail server; the CLI renders it as text or JSON. scikit-learn is not imported here: the model
is described from the config and the file system.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs

from ..config import LABELS, Config, local_zone
from .followup_report import WAITING
from .holding import holding_stopped, holding_switch
from .scheduler import next_release, quiet_until, release_time
from .state_store import Correction, Decision, HistoryRecord, Release, StateStore

__all__ = [
    "DEFAULT_LOGIN",
    "RECENT",
    "bundled_model_path",
    "correction_json",
    "decision_json",
    "describe_model",
    "holding_json",
    "iso",
    "login_keys",
    "login_status",
    "user_model_path",
]

#: The key under which ``run`` files the decisions of a config without ``[[login]]`` tables.
DEFAULT_LOGIN = "default"

RECENT = 5  # decisions shown per login


def login_keys(config: Config) -> list[str]:
    """The logins ``run`` keeps state for: each ``[[login]] username``, else ``default``."""
    keys: list[str] = []
    for login in config.logins:
        key = login.username or DEFAULT_LOGIN
        if key not in keys:
            keys.append(key)
    return keys or [DEFAULT_LOGIN]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def user_model_path() -> Path:
    # Same place as commsproxy.models.store.user_model_path("urgency"), which cannot be imported
    # here without importing scikit-learn (a second or so) just to name a file.
    return platformdirs.user_data_path("commsproxy") / "models" / "urgency.skops"


def bundled_model_path() -> Path:
    # Same as commsproxy.models.store.bundled_model_path("urgency").
    return Path(__file__).resolve().parent.parent / "models" / "default-urgency.skops"


def describe_model(config: Config) -> str:
    """Which urgency model ``run`` uses, as ``resolve_model`` would choose it."""
    if config.triage.model is not None:
        return config.triage.model
    user = user_model_path()
    if user.exists() or user.with_suffix(".json").exists():
        return f"default: your trained model at {user}"
    return f"default: the bundled model at {bundled_model_path()} (no trained model at {user})"


def _release_json(release: Release | None) -> dict[str, Any] | None:
    if release is None:
        return None
    return {
        "started": iso(release.started),
        "finished": iso(release.finished),
        "scheduled": iso(release.scheduled),
        "moved": release.moved,
    }


def decision_json(decision: Decision) -> dict[str, Any]:
    return {
        "login": decision.login,
        "at": iso(decision.decided_at),
        "message_id": decision.message_id,
        "label": decision.label,
        "score": decision.score,
        "held": decision.held,
        "batch": decision.batch,
        "mailbox": decision.mailbox,
        "sender": decision.sender,
        "subject": decision.subject,
        "reason": decision.reason,
    }


def correction_json(correction: Correction) -> dict[str, Any]:
    return {
        "login": correction.login,
        "at": iso(correction.at),
        "kind": correction.kind,
        "label": correction.label,
        "previous": correction.previous,
    }


def _history_json(record: HistoryRecord | None) -> dict[str, Any] | None:
    """How the history with senders was read and how big it is: counts, never names."""
    if record is None:
        return None
    return {
        "state": record.state,
        "started": iso(record.started),
        "finished": iso(record.finished),
        "messages": record.messages,
        "folders": record.folders,
        "stopped": record.stopped,
        "senders": record.senders,
        "updated": iso(record.updated),
    }


def _first_start_json(record: tuple[datetime, int, float] | None) -> dict[str, Any] | None:
    """What the login's first start left in INBOX as it was (None before the first start)."""
    if record is None:
        return None
    at, left, window = record
    return {"at": iso(at), "left_in_place": left, "window_seconds": window}


def _health_json(
    store: StateStore | None, login: str, pid: int | None, now: datetime
) -> dict[str, Any] | None:
    """How triage of ``login`` is doing, as the running ``run`` wrote it; None when no
    ``run`` runs (what a stopped one wrote is stale) or it has not written yet."""
    found = store.health(login) if store is not None and pid is not None else None
    if found is None or store is None or found[1] != pid:
        return None
    health, _, updated = found
    history = None
    if health.history is not None:
        record = store.history_status(login)  # updated as the read goes
        read = record.messages if record is not None else health.history[0]
        history = {"read": read, "limit": health.history[1]}
    notice = store.notice(login)
    decided, coming = health.last_decision, health.next_release
    return {
        "state": health.state.value,
        "ok": health.working,
        "since": iso(health.since),
        "reason": health.reason,
        "todo": health.todo,
        "failing_since": iso(health.failing_since),
        "history": history,
        "last_decision": None if decided is None else {"at": iso(decided[0]), "what": decided[1]},
        "next_release": None
        if coming is None
        else {"batch": coming[0], "at": iso(coming[1]), "overdue": coming[1] <= now},
        "notice_in_inbox": iso(notice.appended) if notice is not None else None,
        "updated": iso(updated),
    }


def login_status(
    config: Config, store: StateStore | None, login: str, now: datetime, pid: int | None = None
) -> dict[str, Any]:
    batches = []
    for batch in config.batches:
        zone = batch.schedule.zone
        coming = release_time(batch, config.batches, next_release(batch.schedule, now), now)
        batches.append(
            {
                "name": batch.name,
                "mailbox": batch.mailbox,
                "labels": list(batch.labels),
                "timezone": zone.key,
                "quiet": str(batch.quiet) if batch.quiet is not None else None,
                "next_release": iso(coming.astimezone(zone)),
                "last_release": _release_json(
                    store.last_release(login, batch.name) if store else None
                ),
            }
        )
    counts = store.decision_counts(login, now - timedelta(hours=24)) if store else {}
    paused = store.paused(login) if store else None
    notice = store.notice(login) if store and paused else None
    quiet_end = quiet_until(config.batches, now)
    return {
        "login": login,
        "health": _health_json(store, login, pid, now),
        # inside a quiet batch's window: when it ends (nothing but urgent mail comes till then)
        "quiet_until": iso(quiet_end) if quiet_end is not None else None,
        "paused": None
        if paused is None
        else {
            "reason": paused.reason,
            "since": iso(paused.since),
            "notice_sent": iso(notice.appended) if notice and notice.appended else None,
        },
        "batches": batches,
        "decisions_24h": {label: counts.get(label, 0) for label in (*LABELS, *counts)},
        "recent": [decision_json(d) for d in store.recent_decisions(login, RECENT)]
        if store
        else [],
        "corrections": len(store.corrections(login)) if store else 0,
        "history": _history_json(store.history_status(login) if store else None),
        "first_start": _first_start_json(store.first_start_record(login) if store else None),
        "snoozed": _snoozed_json(store, login, now),
        "waiting_for_answer": _waiting_json(store, login),
        "autoreplies_sent_today": _autoreplies_today(store, login, now),
        "filing_queue": [
            {
                "account": q.account,
                "message_id": q.message_id,
                "direction": q.direction,
                "attempts": q.attempts,
                "next_try": iso(q.next_try),
                "last_error": q.last_error,
            }
            for q in (store.queued_filings(login) if store else [])
        ],
    }


def holding_json(state_dir: Path, now: datetime) -> dict[str, Any] | None:
    """Holding paused (``stop-holding``): since when, and until when (None: until
    ``start-holding``); None while triage holds mail (also once the pause ran out)."""
    since = holding_stopped(state_dir, now)
    if since is None:
        return None
    switch = holding_switch(state_dir)
    return {"since": iso(since), "until": iso(switch.until) if switch is not None else None}


def _snoozed_json(store: StateStore | None, login: str, now: datetime) -> dict[str, Any]:
    """Mail in the snooze mailboxes (snooze.py) and its next return; mail of an account
    delivered at its sla (sla.py) in the last 24 hours."""
    snoozed = store.snoozed(login) if store else []
    sla = store.sla_settled(login, "delivered", now - timedelta(hours=24)) if store else []
    return {
        "count": len(snoozed),
        "next_return": iso(snoozed[0].due) if snoozed else None,
        "sla_delivered_24h": len(sla),
    }


def _waiting_json(store: StateStore | None, login: str) -> dict[str, Any]:
    """Sent mail waiting for an answer (followups.py) and when the next one comes back."""
    waiting = store.followups(login, WAITING) if store else []
    return {"count": len(waiting), "next_reminder": iso(waiting[0].due_at) if waiting else None}


def _autoreplies_today(store: StateStore | None, login: str, now: datetime) -> int:
    """Auto-replies sent since this machine's midnight."""
    if store is None:
        return 0
    midnight = now.astimezone(local_zone()).replace(hour=0, minute=0, second=0, microsecond=0)
    return store.autoreplies_done_since(login, "sent", midnight)
