"""``commsproxy deliver`` and ``commsproxy urgent``: the one-click actions, on the command line.

Each calls the same function the local page calls (triage/user_actions.py) and prints what it
says happened.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path

import click

from ..config import default_config_path
from ..sender_rules import SenderRuleError, normalize_pattern, sender_lists
from ..triage.deliver_now import normalize_message_id
from ..triage.status_report import login_keys
from ..triage.user_actions import ActionError, Done, UserActions
from .common import config_option, main
from .triage import _config, json_option, state_dir_option


def _actions(config_path: Path | None, state_dir: Path | None, *, say_waits: bool) -> UserActions:
    def waiting(who: str) -> None:
        if say_waits:
            click.echo(f"asked {who}; waiting for it...", err=True)

    return UserActions(_config(config_path), state_dir=state_dir, on_waiting=waiting)


def _done(action: Awaitable[Done]) -> None:
    try:
        done = asyncio.run(_awaited(action))
    except ActionError as err:
        raise click.ClickException(str(err)) from None
    click.echo(done.message)


async def _awaited(action: Awaitable[Done]) -> Done:
    return await action


@main.command("deliver")
@click.argument("message_id", metavar="MESSAGE-ID")
@click.option("--login", help="The [[login]] username the message is held for (with several).")
@config_option
@state_dir_option
def deliver_command(
    message_id: str, login: str | None, config_path: Path | None, state_dir: Path | None
) -> None:
    """Deliver one held message to INBOX now, and learn that it should have come at once.

    MESSAGE-ID is the message's Message-ID header, with or without <> (`commsproxy status`
    and `commsproxy explain` show it). The message goes back to INBOX like a release (it is
    never triaged again) and counts as a correction for `commsproxy train`, as if you had
    dragged it to INBOX. Through `commsproxy run` when it runs, else by this command (that
    needs the login's password_command). Nothing is deleted; a message that is not held is
    refused and nothing changes.

    \b
    Example:
        commsproxy deliver '<1234.5678@mail.example.com>'
        commsproxy deliver 1234.5678@mail.example.com --login me@example.com
    """
    try:
        normalize_message_id(message_id)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="MESSAGE-ID") from None
    actions = _actions(config_path, state_dir, say_waits=True)
    keys = login_keys(actions.config)
    if login is not None and login.strip().lower() not in (k.lower() for k in keys):
        raise click.BadParameter(
            f"{login!r} is not a configured login (logins: {', '.join(keys)})",
            param_hint="--login",
        )
    _done(actions.deliver(login, message_id))


@main.group("urgent")
def urgent_group() -> None:
    """Rules for senders: always urgent, never urgent, or no rule (the model decides).

    The rules are `[triage] vip` and `[triage] never_urgent` in the config file; these
    commands edit that file in place, keeping your comments and layout, and a running
    `commsproxy run` uses the change from the next message on. PATTERN is an address
    (boss@example.com) or *@domain (that domain and its subdomains).

    \b
    Example:
        commsproxy urgent always boss@example.com
        commsproxy urgent never '*@newsletters.example'
        commsproxy urgent forget boss@example.com
        commsproxy urgent list
    """


def _rule_command(name: str, want: str, summary: str, example: str) -> None:
    @urgent_group.command(name, help=f"{summary}\n\n\b\nExample:\n    {example}")
    @click.argument("pattern")
    @config_option
    def command(pattern: str, config_path: Path | None) -> None:
        try:
            normalize_pattern(pattern)
        except SenderRuleError as err:
            raise click.BadParameter(str(err), param_hint="PATTERN") from None
        actions = _actions(config_path, None, say_waits=False)
        call = {
            "always": actions.always_urgent,
            "never": actions.never_urgent,
            "forget": actions.forget_sender,
        }[want]
        _done(call(pattern))


_rule_command(
    "always",
    "always",
    "Mail from PATTERN is always urgent: delivered at once, never held (adds it to "
    "[triage] vip, and takes it out of never_urgent).",
    "commsproxy urgent always '*@bigcustomer.example'",
)
_rule_command(
    "never",
    "never",
    "Mail from PATTERN is never urgent: held as normal or bulk even when the model says "
    "urgent (adds it to [triage] never_urgent, and takes it out of vip).",
    "commsproxy urgent never alerts@monitoring.example",
)
_rule_command(
    "forget",
    "forget",
    "No rule for PATTERN any more: the model decides (takes it out of both lists).",
    "commsproxy urgent forget alerts@monitoring.example",
)


@urgent_group.command("list")
@config_option
@json_option
def urgent_list(config_path: Path | None, as_json: bool) -> None:
    """Show the senders that are always urgent and those never urgent.

    \b
    Example:
        commsproxy urgent list
        commsproxy urgent list --json
    """
    path = config_path or default_config_path()
    if not path.exists():
        lists: dict[str, tuple[str, ...]] = {"vip": (), "never_urgent": ()}
    else:
        try:
            lists = sender_lists(path)
        except SenderRuleError as err:
            raise click.ClickException(str(err)) from None
    if as_json:
        click.echo(json.dumps({k: list(v) for k, v in lists.items()}, indent=2))
        return
    click.echo(f"config: {path}" + ("" if path.exists() else " (not there: no rules)"))
    for title, key in (("always urgent", "vip"), ("never urgent", "never_urgent")):
        click.echo(f"{title} ([triage] {key}):")
        for pattern in lists[key]:
            click.echo(f"  {pattern}")
        if not lists[key]:
            click.echo("  (none)")
