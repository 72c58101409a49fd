"""What ``commsproxy accounts list`` shows: configured accounts and the folders on the server.

One short connection with the first ``[[login]]`` that has a ``password_command``: the accounts
root (configured, or the server's public namespace + ``Accounts``), each account folder and its
message count. Folders that no config entry names (made by colleagues, or trained from) are
accounts too: the model may file into them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config

__all__ = ["AccountRow", "AccountsListError", "list_accounts"]


class AccountsListError(Exception):
    """The server cannot be asked; the message says why."""


@dataclass(frozen=True)
class AccountRow:
    name: str
    key: str | None  # the [accounts.KEY] table, None for a folder the config does not name
    folder: str
    messages: int | None  # None: the folder does not exist yet (made on first filing)
    domains: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    owner: str | None = None


async def list_accounts(config: Config) -> tuple[str, list[AccountRow]]:
    """The accounts root on the server and one row per account, configured ones first."""
    from ..credentials import password_from_command
    from ..endpoints import client_tls_context
    from .filer import accounts_root
    from .upstream import UpstreamImapError, connect

    login = next((e for e in config.logins if e.username and e.password_command), None)
    if login is None or not login.username or not login.password_command:
        raise AccountsListError(
            f"{config.path}: listing account folders needs a [[login]] with username and "
            "password_command"
        )
    password = await password_from_command(login.password_command)
    try:
        up = await connect(
            login.upstream_imap, client_tls_context(login.cafile), login.username, password
        )
    except UpstreamImapError as err:
        raise AccountsListError(str(err)) from None
    try:
        root = await accounts_root(up, config.accounts.root)
        delimiter = await up.delimiter()
        prefix = root + delimiter
        counts: dict[str, int | None] = {}
        for listed in await up.list_mailboxes(prefix + "*"):
            if "\\noselect" not in listed.attributes:
                counts[listed.name[len(prefix) :]] = (await up.status(listed.name)).get("MESSAGES")
    except UpstreamImapError as err:
        raise AccountsListError(str(err)) from None
    finally:
        await up.logout()
    rows = [
        AccountRow(
            a.name,
            a.key,
            prefix + a.name,
            counts.pop(a.name, None),
            a.domains,
            a.addresses,
            a.owner,
        )
        for a in config.accounts.accounts
    ]
    rows += [AccountRow(name, None, prefix + name, n) for name, n in sorted(counts.items())]
    return root, rows
