"""``commsproxy run`` and ``commsproxy init``: the proxy itself and its first config."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from ..autoconfig import write_autoconfig
from ..config import ConfigError, default_config_path, default_log_file, load_config
from ..init import next_steps, write_initial_config
from ..service import RunOptions, TriageStartError, plan, serve
from .check import run_check
from .common import config_option, main, setup_logging


@main.command()
@config_option
@click.option(
    "--upstream",
    metavar="URL",
    help="Upstream IMAP server: imaps://HOST[:PORT], "
    "imap+starttls://HOST[:PORT] or imap://HOST[:PORT] (plain: loopback only). "
    "Replaces the server of every [[login]] in the config.",
)
@click.option(
    "--smtp-upstream",
    metavar="URL",
    help="Upstream SMTP server: smtps://, "
    "smtp+starttls:// or smtp:// (plain: loopback only). Without it, no SMTP relay.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Where mail clients connect for IMAP "
    "[default: 127.0.0.1:1143]. 0.0.0.0 would expose your mail to the network.",
)
@click.option(
    "--smtp-listen",
    metavar="HOST:PORT",
    help="Where mail clients connect for SMTP [default: 127.0.0.1:1587].",
)
@click.option(
    "--tls-listen",
    metavar="HOST:PORT",
    help="Implicit-TLS IMAP listener, with --tls-cert [default: 127.0.0.1:1993].",
)
@click.option(
    "--cafile",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Extra CA certificate (PEM) to trust for the upstream servers.",
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Certificate (PEM) for TLS towards mail clients (see `commsproxy init --cert`).",
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Private key (PEM) for --tls-cert, if not in the same file.",
)
@click.option(
    "--allow-insecure",
    is_flag=True,
    help="Allow a plain imap:// or smtp:// upstream that is not on this machine.",
)
@click.option(
    "--no-triage",
    is_flag=True,
    help="Relay only: no classification, nothing held (as if [triage] enabled = false).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Shadow mode: tag new mail with its triage keywords and log what would be held, "
    "but hold nothing.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where triage keeps its state (decisions, releases) [default: from the config, "
    "else the platform's user state dir].",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every command name (never arguments).")
@click.option("-q", "--quiet", is_flag=True, help="Log only warnings and errors.")
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also log to this file, rotated at 5 MB, 5 kept [default: [proxy] log_file, else "
    f"{default_log_file()}].",
)
@click.option("--no-log-file", is_flag=True, help="Log to the terminal only.")
def run(
    config_path: Path | None,
    verbose: bool,
    quiet: bool,
    log_file: Path | None,
    no_log_file: bool,
    **options: Any,
) -> None:
    """Run the proxy until interrupted (Ctrl-C or SIGTERM).

    New mail is triaged as it arrives: urgent mail stays in INBOX, the rest waits in the
    batches' hold mailboxes (Later, Later/Bulk) until their release times. Works without a
    config file: --upstream is enough. Options override the config. With several [[login]]
    (on one server or several), each client goes to the login its user name names. Passwords
    are never logged or stored: triage uses the login's password_command, else the password
    your mail client logs in with, kept in memory.

    \b
    Example:
        commsproxy run --upstream imaps://imap.example.com \\
                       --smtp-upstream smtp+starttls://smtp.example.com:587
        commsproxy run --dry-run     # see what would be held, hold nothing
        commsproxy run -v --log-file /tmp/commsproxy-debug.log
    """
    if log_file is not None and no_log_file:
        raise click.BadParameter(
            "give --log-file or --no-log-file, not both", param_hint="--log-file"
        )
    try:
        config = load_config(config_path, required=config_path is not None)
        the_plan = plan(config, RunOptions(**options))
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    setup_logging(
        verbose, quiet, log_file=None if no_log_file else log_file or config.proxy.log_file
    )
    try:
        asyncio.run(serve(the_plan))
    except TriageStartError as err:
        raise click.ClickException(f"cannot start triage: {err}") from None
    except OSError as err:
        raise click.ClickException(f"cannot listen: {err}") from None


@main.command()
@config_option
@click.option("--upstream", metavar="URL", help="Upstream IMAP server to write into the config.")
@click.option("--smtp-upstream", metavar="URL", help="Upstream SMTP server to write in.")
@click.option("--username", help="Your user name on the upstream server.")
@click.option(
    "--provider",
    type=click.Choice(["microsoft365", "gmail"]),
    help="Write an OAuth2 login for this provider (its servers are filled in; no --upstream).",
)
@click.option("--client-id", help="With --provider: your app registration's client ID.")
@click.option("--client-secret", help="With --provider gmail: the client secret beside it.")
@click.option(
    "--cert",
    is_flag=True,
    help="Also make a self-signed certificate for localhost, for TLS to mail clients.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config file.")
@click.option(
    "--autoconfig",
    is_flag=True,
    help="Also write config-v1.1.xml beside the config: Thunderbird's autoconfig file, which "
    "fills in commsproxy's addresses when you add the account.",
)
@click.option(
    "--no-check",
    is_flag=True,
    help="Do not log in to the servers at the end (see `commsproxy check`).",
)
def init(config_path: Path | None, autoconfig: bool, no_check: bool, **options: Any) -> None:
    """Write a commented config file to start from, then try it (`commsproxy check`).

    With --upstream or --provider and --username, it logs in to the server to check it
    (asking for the password at the terminal) and makes sure the hold mailboxes exist.
    With --provider, the login signs in with OAuth2: set client_id (see the README), then
    run `commsproxy login`. Ends with the next steps.

    \b
    Example:
        commsproxy init --upstream imaps://imap.example.com --username me@example.com --cert
        commsproxy init --provider microsoft365 --username me@example.com --client-id ID
        commsproxy init --upstream imaps://imap.example.com --autoconfig --no-check
    """
    if options.get("provider") and (options.get("upstream") or options.get("smtp_upstream")):
        raise click.BadParameter("the provider names its own servers", param_hint="--upstream")
    try:
        result = write_initial_config(config_path or default_config_path(), **options)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    click.echo(f"wrote {result.config}")
    if result.cert is not None:
        click.echo(f"wrote {result.cert} and {result.key} (trust {result.cert} in your client)")
    try:
        config = load_config(result.config, required=True)
    except ConfigError as err:
        # A file that still needs the user's part (an OAuth2 app's client_id, say) is written
        # all the same: what is missing is the next step, not a failure of init.
        click.echo(f"next step: edit {result.config}:\n  {err}")
        return
    xml = write_autoconfig(result.config.parent, config) if autoconfig else None
    if xml is not None:
        click.echo(f"wrote {xml} (Thunderbird autoconfig)")
    # Only a server named on the command line can be reached: the template's is an example.
    named = options.get("upstream") or options.get("provider")
    if not no_check and named and options.get("username"):
        click.echo("checking the login (skip with --no-check):")
        run_check(config, seconds=15.0)
    click.echo("next steps:")
    for number, step in enumerate(next_steps(config, autoconfig=xml), 1):
        click.echo(f"  {number}. {step}")
