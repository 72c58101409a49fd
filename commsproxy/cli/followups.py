"""``commsproxy followups``: sent mail waiting for an answer, read from the state file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import click

from ..config import local_zone
from ..triage.followup_report import (
    followup_json,
    followups_by_login,
    recipients_words,
    when_words,
)
from ..triage.state_store import FILENAME, FollowUp
from .common import config_option, main
from .triage import _config, _existing_store, _state_dir, json_option, state_dir_option


@main.command("followups")
@click.option(
    "--all", "everything", is_flag=True,
    help="Also the answered ones, those already back in INBOX, and those not watched.",
)  # fmt: skip
@config_option
@state_dir_option
@json_option
def followups_command(
    everything: bool, config_path: Path | None, state_dir: Path | None, as_json: bool
) -> None:
    """List the mail you sent that is waiting for an answer.

    Every message you send to someone outside your team (through commsproxy's SMTP side, or
    found in Sent) is watched for an answer. When none came within [followup] days working
    days (an account's followup_days; or what you wrote as 2d@followup.invalid among the
    recipients), the message comes back to the top of INBOX, unread. This lists, per login,
    to whom each went, its subject, when it was sent and when it comes back. It reads the
    state file; `commsproxy run` need not be running.

    \b
    Example:
        commsproxy followups
        commsproxy followups --all --json
    """
    config = _config(config_path)
    directory = _state_dir(config, state_dir)
    with _existing_store(directory) as store:
        found = followups_by_login(store, everything=everything) if store is not None else {}
    if as_json:
        result = {
            "state_file": str(directory / FILENAME),
            "logins": {login: [followup_json(f) for f in rows] for login, rows in found.items()},
        }
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if not found:
        if store is None:
            click.echo(f"No state file yet ({directory / FILENAME}): `commsproxy run` makes it.")
        else:
            click.echo("Nothing is waiting for an answer.")
        return
    zone, now = local_zone(), datetime.now(UTC)
    for login, rows in found.items():
        waiting = sum(f.state in ("waiting", "returning") for f in rows)
        click.echo(f"{login}: {waiting} waiting for an answer")
        for followup in rows:
            click.echo(f"  {_line(followup, zone, now)}")


def _line(f: FollowUp, zone: tzinfo, now: datetime) -> str:
    what = f"{f.subject or '(no subject)'}: to {recipients_words(f.recipients)}, sent "
    what += when_words(f.sent_at, zone, now)
    if f.state in ("waiting", "returning"):
        return f"{what}; back in INBOX {when_words(f.due_at, zone, now)} without an answer"
    if f.state == "answered" and f.answered_at is not None:
        return f"{what}; answered by {f.answered_by} {when_words(f.answered_at, zone, now)}"
    if f.state == "returned" and f.returned_at is not None:
        return f"{what}; no answer: back in INBOX {when_words(f.returned_at, zone, now)}"
    return f"{what}; not watched"
