"""``commsproxy check``: try each login against its servers and say what works."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from ..check import LoginCheck, check_config, report
from ..config import Config, ConfigError, load_config
from .common import config_option, main, setup_logging


def _ask(prompt: str) -> str | None:
    """A password typed at the terminal; None when there is no terminal to ask at."""
    if not sys.stdin.isatty():
        return None
    value: str = click.prompt(prompt, hide_input=True, default="", show_default=False)
    return value or None


def run_check(config: Config, *, seconds: float) -> list[LoginCheck]:
    """Check and print every login; shared with ``init``."""
    if not config.logins:
        click.echo("no [[login]] in the config: nothing to check")
        return []
    checks = asyncio.run(check_config(config, ask=_ask, seconds=seconds))
    for check in checks:
        for line in report(check):
            click.echo(line)
    return checks


@main.command()
@config_option
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=15.0,
    show_default=True,
    help="Seconds to wait for each server before calling it unreachable.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log each step (never a password or token).")
def check(config_path: Path | None, timeout: float, verbose: bool) -> None:
    """Log in to each [[login]]'s servers as `run` will, and say what works.

    Uses the login's password_command (or asks for the password), or its OAuth2 sign-in.
    Shows what the IMAP server offers that commsproxy relies on (IDLE, MOVE, UIDPLUS,
    NAMESPACE, ACL, SPECIAL-USE, CONDSTORE) and what each missing one means for you;
    makes sure the hold mailboxes and the account folders' root exist, creating any that
    are missing (nothing is ever deleted); and logs in to SMTP. Exits with status 1 when a
    login is refused or a server cannot be reached.

    \b
    Example:
        commsproxy check
        commsproxy check --config ~/work.toml --timeout 30
    """
    setup_logging(verbose, quiet=not verbose)
    try:
        config = load_config(config_path, required=config_path is not None)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    checks = run_check(config, seconds=timeout)
    failed = [c.username or "[[login]]" for c in checks if c.failed]
    if failed:
        raise click.ClickException(f"not working: {', '.join(failed)}")
