"""``commsproxy stop-holding`` and ``start-holding``: for a user who wants all their mail now."""

from __future__ import annotations

from pathlib import Path

import click

from ..triage.holding import start_holding, stop_holding
from ..triage.release_now import ReleaseNowError
from .common import config_option, main
from .triage import _config, _report, released_by, state_dir_option


@main.command("stop-holding")
@config_option
@state_dir_option
def stop_holding_command(config_path: Path | None, state_dir: Path | None) -> None:
    """Release all held mail now and hold no more: everything arrives in INBOX.

    Every batch of every login goes back to INBOX at once (through `commsproxy run` when it
    runs, else by this command: that needs each login's password_command). From then on
    triage still tags new mail but holds none, also after a restart, until
    `commsproxy start-holding`. Nothing is deleted.

    \b
    Example:
        commsproxy stop-holding
        commsproxy start-holding     # hold mail in batches again
    """
    config = _config(config_path)
    asked: list[str] = []

    def waiting(who: str) -> None:
        asked.append(who)
        click.echo(f"asked {who} to release; waiting for it...", err=True)

    try:
        stopped = stop_holding(config, state_dir=state_dir, on_waiting=waiting)
    except ReleaseNowError as err:
        raise click.ClickException(
            f"holding is stopped, but the held mail is not released yet: {err}"
        ) from None
    done = stopped.released
    _report(done.released, config.batches, False, done.by, done.request)
    click.echo(released_by(done.by, asked))
    since = stopped.since.astimezone().strftime("%Y-%m-%d %H:%M")
    already = " (since " + since + ")" if stopped.already else ""
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
