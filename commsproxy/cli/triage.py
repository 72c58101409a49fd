"""``commsproxy status``, ``release`` and ``explain``: what triage did, and releasing held mail.

These commands read the state file that ``commsproxy run`` writes and never need the mail
server, except ``release --now`` without a running ``run``. ``status`` and ``explain`` only look:
they never create the state file, so asking before the first run leaves nothing behind.
scikit-learn is not imported here; the model is described from the config and the file system.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

import click

from ..config import BatchConfig, Config, ConfigError, load_config, local_zone
from ..triage.holding import holding_stopped, holding_switch
from ..triage.release_now import ReleaseNowError, release_now
from ..triage.runlock import running_pid
from ..triage.state_store import (
    FILENAME,
    StateStore,
    StoreError,
)
from ..triage.status_report import (
    correction_json,
    decision_json,
    describe_model,
    iso,
    login_keys,
    login_status,
)
from .common import config_option, main

_STATE_DIR = click.Path(file_okay=False, path_type=Path)


def state_dir_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--state-dir",
        type=_STATE_DIR,
        help="Directory of the state file [default: [proxy] state_dir in the config].",
    )(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(func)


def _config(config_path: Path | None) -> Config:
    try:
        return load_config(config_path, required=config_path is not None)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None


def _state_dir(config: Config, state_dir: Path | None) -> Path:
    return (state_dir or config.proxy.state_dir).expanduser()


@contextmanager
def _existing_store(state_dir: Path) -> Iterator[StateStore | None]:
    """The state store if a run has made one; None rather than a new empty file."""
    if not (state_dir / FILENAME).is_file():
        yield None
        return
    try:
        store = StateStore.open(state_dir)
    except StoreError as err:
        raise click.ClickException(str(err)) from None
    with store:
        try:
            yield store
        except StoreError as err:
            raise click.ClickException(str(err)) from None


def _show(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z").rstrip()


# --- the model, described without loading it ------------------------------------------------


# --- status -------------------------------------------------------------------------------------


def _first_start_line(first: dict[str, Any] | None, zone: tzinfo) -> str:
    if first is None:
        return "first start: not yet (mail already in INBOX then is tagged and left in place)"
    when = _show(datetime.fromisoformat(first["at"]), zone)
    hours = first["window_seconds"] / 3600
    recent = f"; unread mail of the last {hours:g} hour(s) was triaged" if hours else ""
    return (
        f"first start: {when}: {first['left_in_place']} message(s) already in INBOX "
        f"left in place{recent}"
    )


def _history_line(history: dict[str, Any] | None, zone: tzinfo) -> str:
    if history is None:
        return "history with senders: not read yet (read at the first start of `run`)"
    read = f"{history['messages']} headers from {history['folders']} folder(s)"
    if history["state"] == "reading":
        return f"history with senders: reading, {read} so far"
    stopped = {"time": " (stopped at history_seconds)", "count": " (stopped at history_messages)"}
    when = _show(datetime.fromisoformat(history["finished"]), zone) if history["finished"] else ""
    return (
        f"history with senders: {history['senders']} senders; {read} at the first start"
        f"{stopped.get(history['stopped'] or '', '')}{', ' + when if when else ''}; "
        f"updated {_show(datetime.fromisoformat(history['updated']), zone)}"
    )


@main.command()
@config_option
@state_dir_option
@json_option
def status(config_path: Path | None, state_dir: Path | None, as_json: bool) -> None:
    """Show whether `commsproxy run` is running, the batches and what triage did lately.

    Per login: how its triage is doing (connected, or what fails, since when, and what to
    do), each batch with its next and last release, the decisions of the last 24 hours
    by label, the last few decisions and why, how many corrections (mail you moved out of
    a hold mailbox, or into one) were recorded for training, how the history with your
    senders was read from the server (counts only), and how many messages already in
    INBOX at the first start were left in place, and when. When there are some: how many
    messages are snoozed and when the next comes back, how much sent mail waits for an
    answer and when the next reminder comes (`commsproxy followups` lists them), how much
    held mail an account's sla delivered in the last 24 hours, and how many auto-replies
    went out today. Exits with 1 when triage of a login does not work while
    `commsproxy run` runs.

    \b
    Example:
        commsproxy status
        commsproxy status --json
    """
    config = _config(config_path)
    directory = _state_dir(config, state_dir)
    now = datetime.now(UTC)
    pid = running_pid(directory)
    with _existing_store(directory) as store:
        logins = [login_status(config, store, key, now, pid) for key in login_keys(config)]
    stopped = holding_stopped(directory, now)
    switch = holding_switch(directory) if stopped is not None else None
    result = {
        "running": pid is not None,
        "pid": pid,
        "holding_stopped": iso(stopped) if stopped is not None else None,
        "holding_until": iso(switch.until) if switch is not None else None,
        "model": describe_model(config),
        "state_file": str(directory / FILENAME),
        "state_exists": store is not None,
        "logins": logins,
    }
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        for line in _status_lines(config, result, pid, now):
            click.echo(line)
    if any(login["health"] is not None and not login["health"]["ok"] for login in logins):
        raise SystemExit(1)


def _status_lines(
    config: Config, result: dict[str, Any], pid: int | None, now: datetime
) -> Iterator[str]:
    if pid is None:
        yield "commsproxy run: not running (held mail waits until it runs or `release --now`)"
    else:
        yield f"commsproxy run: running (pid {pid})" if pid else "commsproxy run: running"
    if result["holding_until"] is not None:
        until = _show(datetime.fromisoformat(result["holding_until"]), local_zone())
        yield (
            f"holding: paused until {until} (commsproxy stop-holding --until): new mail "
            "stays in INBOX until then; `commsproxy start-holding` holds it again sooner"
        )
    elif result["holding_stopped"] is not None:
        since = _show(datetime.fromisoformat(result["holding_stopped"]), local_zone())
        yield (
            f"holding: STOPPED since {since} (commsproxy stop-holding): new mail stays in "
            "INBOX; `commsproxy start-holding` holds it in batches again"
        )
    yield f"model: {result['model']}"
    if result["state_exists"]:
        yield f"state: {result['state_file']}"
    else:
        yield f"state: no triage has run yet ({result['state_file']} does not exist)"
    zone = local_zone()
    by_name = {batch.name: batch for batch in config.batches}
    for login in result["logins"]:
        yield ""
        yield f"{login['login']}:"
        if login["paused"] is not None:
            since = _show(datetime.fromisoformat(login["paused"]["since"]), zone)
            yield f"  triage PAUSED since {since}: {login['paused']['reason']}"
        yield from _health_lines(login["health"], login["paused"] is not None, zone)
        if login.get("quiet_until"):
            until = _show(datetime.fromisoformat(login["quiet_until"]), zone)
            yield f"  quiet until {until}: only urgent mail comes in, releases wait till then"
        width = max((len(b["name"]) for b in login["batches"]), default=0)
        for entry in login["batches"]:
            batch = by_name[entry["name"]]
            batch_zone = batch.schedule.zone
            next_at = _show(datetime.fromisoformat(entry["next_release"]), batch_zone)
            last = entry["last_release"]
            if last is None:
                last_text = "never released"
            else:
                when = _show(datetime.fromisoformat(last["started"]), batch_zone)
                done = "" if last["finished"] else ", unfinished"
                last_text = f"last {when}, {last['moved']} moved{done}"
            held = ", ".join(batch.labels) or f"quiet {batch.quiet}"
            yield (
                f"  {entry['name']:<{width}}  {batch.mailbox} ({held}): next {next_at}; {last_text}"
            )
        counts = ", ".join(f"{n} {label}" for label, n in login["decisions_24h"].items())
        yield f"  last 24 h: {counts}"
        yield from _later_lines(login, zone, now)
        if login["recent"]:
            yield "  recent:"
        for entry in login["recent"]:
            yield f"    {_decision_line(entry, zone)}"
        yield f"  corrections recorded: {login['corrections']}"
        yield f"  {_history_line(login['history'], zone)}"
        yield f"  {_first_start_line(login['first_start'], zone)}"
        for queued in login["filing_queue"]:
            error = f"; last error: {queued['last_error']}" if queued["last_error"] else ""
            yield (
                f"  waiting to be filed: {queued['message_id'] or '(no Message-ID)'} in "
                f"{queued['account']} ({queued['attempts']} attempts{error})"
            )


def _soon(moment: str, zone: tzinfo, now: datetime) -> str:
    """``Tue 08:00`` within the coming week, else with the date."""
    local = datetime.fromisoformat(moment).astimezone(zone)
    within = local - now < timedelta(days=6)
    return local.strftime("%a %H:%M" if within else "%a %d %b %H:%M")


def _later_lines(login: dict[str, Any], zone: tzinfo, now: datetime) -> Iterator[str]:
    """Snoozed mail, sent mail waiting for an answer, sla deliveries and auto-replies: a line
    each, only when there is something to say."""
    snoozed = login.get("snoozed") or {}
    if snoozed.get("count"):
        back = f", next back {_soon(snoozed['next_return'], zone, now)}"
        yield f"  snoozed: {snoozed['count']}{back if snoozed['next_return'] else ''}"
    waiting = login.get("waiting_for_answer") or {}
    if waiting.get("count"):
        due = waiting["next_reminder"]
        reminder = f", next reminder {_soon(due, zone, now)}" if due else ""
        yield f"  waiting for an answer: {waiting['count']}{reminder}"
    if snoozed.get("sla_delivered_24h"):
        yield f"  delivered at an account's sla in the last 24 h: {snoozed['sla_delivered_24h']}"
    if login.get("autoreplies_sent_today"):
        yield f"  auto-replies sent today: {login['autoreplies_sent_today']}"


def _health_lines(health: dict[str, Any] | None, paused: bool, zone: tzinfo) -> Iterator[str]:
    """The login's health in a few lines; a pause has its own line above."""
    if health is None:
        return
    since = _show(datetime.fromisoformat(health["since"]), zone)
    if health["ok"]:
        loading = health["history"]
        if loading is not None:
            yield (
                f"  triage: {health['state']} ({loading['read']} of at most {loading['limit']}"
                f" headers) since {since}"
            )
        else:
            yield f"  triage: {health['state']} since {since}"
    elif not paused:
        failing = _show(datetime.fromisoformat(health["failing_since"] or health["since"]), zone)
        yield f"  triage: {health['state'].upper()} since {failing}: {health['reason']}"
    if not health["ok"]:
        if health["todo"]:
            yield f"    what to do: {health['todo']}"
        if health["notice_in_inbox"]:
            notice = _show(datetime.fromisoformat(health["notice_in_inbox"]), zone)
            yield f"    a notice saying so is in INBOX since {notice}"
    facts = []
    if health["last_decision"] is not None:
        decided = health["last_decision"]
        facts.append(
            f"last decision {_show(datetime.fromisoformat(decided['at']), zone)} "
            f"({decided['what']})"
        )
    if health["next_release"] is not None:
        coming = health["next_release"]
        when = _show(datetime.fromisoformat(coming["at"]), zone)
        late = " (overdue: released as soon as triage works)" if coming["overdue"] else ""
        facts.append(f"next release {coming['batch']} {when}{late}")
    if facts:
        yield "  " + "; ".join(facts)


def _decision_line(entry: dict[str, Any], zone: tzinfo) -> str:
    when = _show(datetime.fromisoformat(entry["at"]), zone)
    if entry["held"]:
        where = f"held in {entry['batch']}"
    elif entry["batch"]:
        where = f"not held ({entry['batch']})"
    else:
        where = "delivered"
    who = entry["sender"] or "(no sender)"
    subject = entry["subject"] or "(no subject)"
    return f"{when}  {entry['label']:<6}  {where}  {who}: {subject!r} ({entry['reason']})"


# --- release ------------------------------------------------------------------------------------


def _report(
    released: dict[str, int],
    batches: Sequence[BatchConfig],
    as_json: bool,
    by: str,
    request_id: int,
) -> None:
    if as_json:
        result = {"request": request_id, "completed": True, "by": by, "released": released}
        click.echo(json.dumps(result, indent=2))
        return
    mailboxes = {batch.name: batch.mailbox for batch in batches}
    for name, count in released.items():
        noun = "message" if count == 1 else "messages"
        where = f" ({mailboxes[name]})" if name in mailboxes else ""
        click.echo(f"{name}{where}: released {count} {noun} to INBOX")


@main.command()
@config_option
@click.option(
    "--batch",
    metavar="NAME",
    help="Release only this batch (a [[batch]] name) [default: every batch].",
)
@click.option("--now", is_flag=True, help="Release now (required: the point of this command).")
@click.option(
    "--login",
    metavar="USER",
    help="Release only for this [[login]] username [default: every login].",
)
@state_dir_option
@json_option
def release(
    config_path: Path | None,
    batch: str | None,
    now: bool,
    login: str | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Move held mail back to INBOX now instead of at its next release time.

    With `commsproxy run` running, the release is asked of it (through the state file) and
    this command waits up to a minute for it to finish. Without it, this command connects to
    the mail server and releases by itself.

    \b
    Example:
        commsproxy release --now
        commsproxy release --batch bulk --now
    """
    if not now:
        raise click.UsageError(
            "say --now to release now; scheduled releases happen by themselves while "
            "`commsproxy run` runs"
        )
    config = _config(config_path)
    names = [b.name for b in config.batches]
    if batch is not None and batch not in names:
        known = ", ".join(names) or "none"
        raise click.BadParameter(
            f"{batch!r} is not a configured batch (batches: {known})", param_hint="--batch"
        )
    keys = login_keys(config)
    if login is not None and login not in keys:
        raise click.BadParameter(
            f"{login!r} is not a configured login (logins: {', '.join(keys)})",
            param_hint="--login",
        )
    targets = [b for b in config.batches if batch in (None, b.name)]

    asked: list[str] = []

    def waiting(who: str) -> None:
        asked.append(who)
        if not as_json:
            click.echo(f"asked {who} to release; waiting for it...", err=True)

    try:
        done = release_now(config, login, batch, state_dir=state_dir, on_waiting=waiting)
    except ReleaseNowError as err:
        raise click.ClickException(str(err)) from None
    _report(done.released, targets, as_json, done.by, done.request)
    if not as_json:
        click.echo(released_by(done.by, asked))


def released_by(by: str, asked: Sequence[str]) -> str:
    """Which process carried out a release: the running ``run``, or this command."""
    if by == "run":
        return f"released by {asked[-1] if asked else 'commsproxy run'}"
    return "released by this command (commsproxy run is not running)"


# --- explain ------------------------------------------------------------------------------------


def _bare_id(message_id: str) -> str:
    text = message_id.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text


@main.command()
@config_option
@click.argument("message_id", metavar="MESSAGE-ID")
@state_dir_option
@json_option
def explain(
    config_path: Path | None, message_id: str, state_dir: Path | None, as_json: bool
) -> None:
    """Say what triage decided for one message and why.

    MESSAGE-ID is the message's Message-ID header, with or without the <>. Exits with 1 when
    no decision is recorded for it.

    \b
    Example:
        commsproxy explain '<CAF=abc123@mail.example.com>'
        commsproxy explain CAF=abc123@mail.example.com --json
    """
    config = _config(config_path)
    directory = _state_dir(config, state_dir)
    bare = _bare_id(message_id)
    if not bare:
        raise click.BadParameter("expected a Message-ID such as <abc@example.com>")
    with _existing_store(directory) as store:
        decisions = store.decisions_for_message_id(bare) if store else []
        corrections = (
            [c for c in store.corrections() if c.message_id and _bare_id(c.message_id) == bare]
            if store
            else []
        )
        filings = store.filings_for_message_id(bare) if store else []
    mailboxes = {batch.name: batch.mailbox for batch in config.batches}
    if as_json:
        result = {
            "message_id": bare,
            "decisions": [
                {**decision_json(d), "batch_mailbox": mailboxes.get(d.batch or "")}
                for d in decisions
            ],
            "corrections": [correction_json(c) for c in corrections],
            "filings": [
                {
                    "login": f.login,
                    "at": iso(f.filed_at),
                    "account": f.account,
                    "direction": f.direction,
                    "outcome": f.outcome,
                    "reason": f.reason,
                }
                for f in filings
            ],
        }
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
    if not decisions and not filings:
        raise click.ClickException(
            f"no decision recorded for <{bare}>; it may predate commsproxy or the state file "
            "was reset"
        )
    if as_json:
        return
    zone = local_zone()
    click.echo(f"<{bare}>")
    for decision in decisions:
        click.echo(f"  {decision.login}, {_show(decision.decided_at, zone)}: {decision.label}")
        if decision.score is not None:
            click.echo(f"    p(urgent): {decision.score:.2f}")
        if decision.batch is None:
            click.echo("    delivered to INBOX at once")
        else:
            mailbox = mailboxes.get(decision.batch)
            place = f"batch {decision.batch}" + (f" ({mailbox})" if mailbox else "")
            if decision.held:
                click.echo(f"    held in {place}")
            else:
                click.echo(f"    left in INBOX, not held in {place} (already read or dry run)")
        click.echo(f"    why: {decision.reason}")
        click.echo(f"    from: {decision.sender or '(no sender)'}")
        click.echo(f"    subject: {decision.subject or '(no subject)'}")
    for correction in corrections:
        was = f" (was {correction.previous})" if correction.previous else ""
        click.echo(
            f"  corrected {_show(correction.at, zone)} by {correction.kind}: "
            f"{correction.label}{was}"
        )
    for filed in filings:
        how = {"present": "already there (a colleague filed it)"}.get(filed.outcome, filed.outcome)
        click.echo(
            f"  {filed.direction} mail filed {_show(filed.filed_at, zone)} for {filed.login}: "
            f"{filed.account}, {how}; why: {filed.reason}"
        )
