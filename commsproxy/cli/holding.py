"""``commsproxy stop-holding`` and ``start-holding``: for a user who wants all their mail now."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from ..config import local_zone
from ..triage.holding import UntilError, parse_until, start_holding, stop_holding
from ..triage.release_now import ReleaseNowError
from .common import config_option, main
from .triage import _config, _report, released_by, state_dir_option


@main.command("stop-holding")
@click.option(
    "--until",
    "until_text",
    metavar="TIME",
    help="Hold again by itself at TIME: HH:MM (today, or tomorrow when that has passed) "
    "or an ISO time such as 2026-12-07T14:00 [default: until start-holding].",
)
@config_option
@state_dir_option
def stop_holding_command(
    until_text: str | None, config_path: Path | None, state_dir: Path | None
) -> None:
    """Release all held mail now and hold no more: everything arrives in INBOX.

    Every batch of every login goes back to INBOX at once (through `commsproxy run` when it
    runs, else by this command: that needs each login's password_command). From then on
    triage still tags new mail but holds none, also after a restart, until
    `commsproxy start-holding`, or until TIME with --until ("focus off until 14:00": holding
    resumes by itself then). Nothing is deleted.

    \b
    Example:
        commsproxy stop-holding
        commsproxy stop-holding --until 14:00
        commsproxy start-holding     # hold mail in batches again
    """
    until = None
    if until_text is not None:
        try:
            until = parse_until(until_text, datetime.now(UTC))
        except UntilError as err:
            raise click.BadParameter(str(err), param_hint="--until") from None
    config = _config(config_path)
    asked: list[str] = []

    def waiting(who: str) -> None:
        asked.append(who)
        click.echo(f"asked {who} to release; waiting for it...", err=True)

    try:
        stopped = stop_holding(config, state_dir=state_dir, on_waiting=waiting, until=until)
    except ReleaseNowError as err:
        raise click.ClickException(
            f"holding is stopped, but the held mail is not released yet: {err}"
        ) from None
    done = stopped.released
    _report(done.released, config.batches, False, done.by, done.request)
    click.echo(released_by(done.by, asked))
    since = stopped.since.astimezone().strftime("%Y-%m-%d %H:%M")
    already = " (since " + since + ")" if stopped.already else ""
    if stopped.until is not None:
        back = stopped.until.astimezone(local_zone()).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"holding paused until {back}{already}: new mail stays in INBOX until then; "
            "`commsproxy start-holding` holds it in batches again sooner"
        )
        return
    click.echo(
        f"holding stopped{already}: new mail stays in INBOX; "
        "`commsproxy start-holding` holds it in batches again"
    )


@main.command("start-holding")
@config_option
@state_dir_option
def start_holding_command(config_path: Path | None, state_dir: Path | None) -> None:
    """Hold mail in batches again after `commsproxy stop-holding`.

    New mail that can wait is held from the next message on (a running `commsproxy run`
    notices by itself); mail that arrived meanwhile stays in INBOX.

    \b
    Example:
        commsproxy start-holding
    """
    config = _config(config_path)
    since = start_holding(config, state_dir=state_dir)
    if since is None:
        click.echo("holding was not stopped: nothing to do")
    else:
        click.echo("holding again: new mail that can wait goes to its batch")
