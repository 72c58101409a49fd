"""``commsproxy service install | uninstall | status``: start commsproxy with the computer."""

from __future__ import annotations

from pathlib import Path

import click

from ..autostart import (
    AutostartError,
    Outcome,
    install,
    launch_for,
    place,
    status,
    uninstall,
)
from .common import main


@main.group()
def service() -> None:
    """Start `commsproxy run` with the computer, and restart it when it fails.

    A systemd user unit on Linux, a launchd agent on macOS, a scheduled task at logon
    (without a console window) on Windows. Each command says what it wrote and where.

    \b
    Example:
        commsproxy service install
        commsproxy service status
        commsproxy service uninstall
    """


def _show(outcome: Outcome) -> None:
    for path in outcome.wrote:
        click.echo(f"wrote {path}")
    for path in outcome.removed:
        click.echo(f"removed {path}")
    for line in outcome.ran:
        click.echo(f"ran {line}")
    for note in outcome.notes:
        click.echo(note)


@service.command("install")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The config file the service runs with [default: the default config file].",
)
def install_command(config_path: Path | None) -> None:
    """Install and start the service: `commsproxy run` at every login, restarted on failure.

    Runs this very commsproxy (by its absolute path), so install it from the environment
    you want the service to use. Installing again replaces the service.

    \b
    Example:
        commsproxy service install
        commsproxy service install --config ~/work/commsproxy.toml
    """
    launch = launch_for(config_path)
    try:
        outcome = install(launch, place())
    except (AutostartError, OSError) as err:
        raise click.ClickException(f"service install: {err}") from None
    click.echo(f"the service runs: {' '.join(launch.argv)}")
    _show(outcome)


@service.command("uninstall")
def uninstall_command() -> None:
    """Stop the service and remove it; your config, state and mail stay as they are.

    \b
    Example:
        commsproxy service uninstall
    """
    try:
        outcome = uninstall(place())
    except (AutostartError, OSError) as err:
        raise click.ClickException(f"service uninstall: {err}") from None
    _show(outcome)
    if not outcome.removed:
        click.echo("the service was not installed")


@service.command("status")
def status_command() -> None:
    """Say whether the service is installed, starts at login, and runs now.

    Exits with 1 when it is not installed, 3 when it is installed but not running.

    \b
    Example:
        commsproxy service status
    """
    try:
        state = status(place())
    except AutostartError as err:
        raise click.ClickException(f"service status: {err}") from None

    def word(value: bool | None, yes: str, no: str) -> str:
        return "unknown" if value is None else yes if value else no

    click.echo(f"installed: {'yes' if state.installed else 'no'} ({state.where})")
    click.echo(f"starts at login: {word(state.enabled, 'yes', 'no')}")
    click.echo(f"running: {word(state.running, 'yes', 'no')}")
    if state.detail:
        click.echo(state.detail)
    if not state.installed:
        raise SystemExit(1)
    if state.running is False:
        raise SystemExit(3)
