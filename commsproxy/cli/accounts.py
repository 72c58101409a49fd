"""``commsproxy accounts list`` and ``accounts add``: the customer accounts mail is filed into."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import asdict
from pathlib import Path

import click

from ..config import ConfigError, default_config_path, load_config, parse_config_text
from ..init import toml_string
from ..private_files import write_private_text
from ..triage.accountlist import AccountsListError, list_accounts
from .common import config_option, main

__all__ = ["add_account_text"]


@main.group()
def accounts() -> None:
    """Customer accounts: shared folders that each customer's mail is filed into.

    \b
    Example:
        commsproxy accounts add "Acme Corp" --domain acme.com
        commsproxy accounts list
    """


@accounts.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def list_command(config_path: Path | None, as_json: bool) -> None:
    """Show each account, its folder on the server and how many messages it holds.

    Asks the server (with the first [[login]]'s password_command) for the folders under the
    accounts root; folders the config does not name are listed too.

    \b
    Example:
        commsproxy accounts list
        commsproxy accounts list --json
    """
    try:
        config = load_config(config_path, required=config_path is not None)
        root, rows = asyncio.run(list_accounts(config))
    except (ConfigError, AccountsListError) as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        accounts = [asdict(row) for row in rows]
        click.echo(json.dumps({"root": root, "accounts": accounts}, indent=2, ensure_ascii=False))
        return
    click.echo(f"accounts root: {root}")
    if not rows:
        click.echo("no accounts yet: add one with `commsproxy accounts add NAME --domain D`")
    for row in rows:
        count = "not created yet" if row.messages is None else f"{row.messages} messages"
        rules = ", ".join([*row.domains, *row.addresses]) or (
            "no rules (model only)" if row.key else "not in the config"
        )
        owner = f"; owner {row.owner}" if row.owner else ""
        click.echo(f"  {row.name}: {row.folder} ({count}) <- {rules}{owner}")


@accounts.command("add")
@config_option
@click.argument("name")
@click.option("--domain", "domains", multiple=True, help="A customer's mail domain (repeatable).")
@click.option(
    "--address", "addresses", multiple=True, help="A customer's own address (repeatable)."
)
@click.option("--owner", help="The colleague who looks after the account.")
@click.option("--key", help="The config table's key [default: from NAME].")
def add_command(
    config_path: Path | None,
    name: str,
    domains: tuple[str, ...],
    addresses: tuple[str, ...],
    owner: str | None,
    key: str | None,
) -> None:
    """Add a customer account to the config file: mail from or to it is filed in its folder.

    The folder (ROOT/NAME) is created on the server when the first message is filed. A
    customer on a free-mail domain (gmail.com...) is added by --address, not --domain.

    \b
    Example:
        commsproxy accounts add "Acme Corp" --domain acme.com --domain acme.de
        commsproxy accounts add "Jane Doe Consulting" --address jane.doe@gmail.com
    """
    if not domains and not addresses:
        raise click.UsageError("give at least one --domain or --address")
    path = config_path or default_config_path()
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else ""
    except OSError as err:
        raise click.ClickException(f"cannot read {path}: {err}") from None
    key = key or _key(name)
    text = add_account_text(before, key, name, domains, addresses, owner)
    try:
        parse_config_text(path, text)
    except ConfigError as err:
        flag = {"domains": "--domain", "addresses": "--address", "name": "NAME"}.get(
            err.key.rpartition(" ")[2], "--key"
        )
        raise click.BadParameter(str(err), param_hint=flag) from None
    write_private_text(path, text)
    click.echo(f"added [accounts.{key}] {name} to {path}; restart `commsproxy run` to use it")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "account"


def add_account_text(
    text: str,
    key: str,
    name: str,
    domains: tuple[str, ...],
    addresses: tuple[str, ...],
    owner: str | None,
) -> str:
    """The config text with one ``[accounts.KEY]`` table appended; comments kept as they are."""
    lines = [f"[accounts.{toml_string(key) if not re.fullmatch(r'[A-Za-z0-9_-]+', key) else key}]"]
    lines.append(f"name = {toml_string(name)}")
    if domains:
        lines.append(f"domains = [{', '.join(toml_string(d) for d in domains)}]")
    if addresses:
        lines.append(f"addresses = [{', '.join(toml_string(a) for a in addresses)}]")
    if owner:
        lines.append(f"owner = {toml_string(owner)}")
    head = text.rstrip("\n")
    return (head + "\n\n" if head else "") + "\n".join(lines) + "\n"
