"""``commsproxy init``: a commented config file (and optionally a localhost certificate)."""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .autoconfig import autoconfig_domain
from .config import Config, ConfigError
from .oauth.providers import PRESETS
from .private_files import write_private_text
from .tlscert import write_self_signed

__all__ = ["InitResult", "next_steps", "write_initial_config"]

_LOGIN_UPSTREAM = """\
[[login]]
# Your real mail server.  Schemes: imaps:// (TLS, port 993), imap+starttls:// (143),
# imap:// (plain; only for a server on this machine unless allow_insecure = true).
upstream_imap = {upstream}
# Outgoing mail: smtps:// (465), smtp+starttls:// (587), smtp:// (plain, loopback only).
{smtp_comment}upstream_smtp = {smtp_upstream}
# The user this login is for, and a command that prints its password (like mbsync's
# PassCmd).  Background triage uses it; without it, the password your client logs in with
# is kept in memory only, never written anywhere.
{user_comment}username = {username}
# password_command = "pass show mail/work"
# Extra CA certificate (PEM) to trust for this server, e.g. a company CA.
# cafile = "/etc/ssl/certs/company-ca.pem"

"""

_TEMPLATE = """\
# commsproxy configuration.  Point your mail client at the [proxy] addresses below
# (IMAP {imap}, SMTP {smtp}, no TLS needed on this machine), with your usual user
# name and password; commsproxy passes them on to your real server.

{login_block}[proxy]
# Where your mail client connects.  127.0.0.1 keeps the proxy private to this machine;
# 0.0.0.0 would offer it (and your mail) to the whole network.
imap = "{imap}"
smtp = "{smtp}"
# TLS towards your mail client: STARTTLS on the ports above and implicit TLS on imaps.
{tls_comment}tls_cert = {cert}
{tls_comment}tls_key = {key}
{tls_comment}imaps = "127.0.0.1:1993"
# Largest APPEND literal and largest outgoing message accepted from the client.
# max_literal = "64M"
# max_message_size = "50M"
# Outgoing mail being received or sent at once, over all clients; beyond it a client is
# asked to try again shortly.  Big messages wait on disk, not in memory.
# smtp_max_in_flight = "200M"
# max_connections = 1000   # default: as many as the open-file limit allows
# Where triage keeps its log and cache (default: the platform's user state directory).
# state_dir = "~/.local/state/commsproxy"
# `commsproxy run` also logs here, rotated at 5 MB (default: the platform's user log dir,
# ~/.local/state/commsproxy/log/commsproxy.log on Linux); false: the terminal only.
# log_file = "~/commsproxy.log"

# The local page, opened with `commsproxy open`: what is held now and when it comes, the
# day in a picture, your accounts and the model, with buttons for the same actions as the
# commands (deliver now, always/never urgent, release a batch, pause holding).  It listens
# on 127.0.0.1 only and lets in only whoever holds the key in the state directory.
# [web]
# port = 1180
# enabled = true  # false: no page

[triage]
# Senders whose mail is always urgent, delivered at once: addresses or "*@domain".
# vip = ["boss@example.com", "*@family.example"]
# Senders whose mail is never urgent: held like the rest of its batch (vip wins).
# never_urgent = ["*@newsletters.example"]
# Mail to your address with this tag (you+urgent@example.com) always comes through at once:
# give it to the people who may interrupt you.  "" turns it off.
# urgent_tag = "urgent"
# The classifier: "default" (shipped with commsproxy) or the path of a model file.
# model = "default"
# Seconds your mail client may wait for new mail to be triaged before it sees it anyway.
# gate_timeout = 5

# Mail that can wait is held in batches and released at set times; urgent mail never waits.
# Default (no [[batch]] at all): this "later" batch and "bulk" (bulk mail, Later/Bulk, 16:30).
# [[batch]]
# name = "later"
# mailbox = "Later"  # "/" between levels, whatever separator your server uses
# labels = ["normal"]  # "normal" and/or "bulk"; a label no batch holds arrives at once
# release = ["08:30", "12:30", "16:30"]
# days = "mon-fri"
#   or times by day, without days:
#   release = {{ "mon-thu" = ["08:30", "12:30", "16:30"], fri = ["08:30", "12:30"] }}
# timezone = "Europe/Amsterdam"  # default: this machine's time zone
# A quiet batch holds, from 18:00 to 08:00, the mail no other batch holds (urgent mail still
# comes), and every other batch's release waits until 08:00; then all of it comes at once:
#   [[batch]]
#   name = "evening"
#   mailbox = "Evening"
#   quiet = "18:00-08:00"
#   days = "mon-fri"  # the evenings it starts on; default every day

# Customer accounts: mail from or to a customer is filed once into a shared folder per
# account (ROOT/NAME), whoever on the team received or sent it.  Add one with
# `commsproxy accounts add "Acme Corp" --domain acme.com`.
# [accounts]
# root = "Public/Accounts"  # default: the server's public namespace + "Accounts"
# internal_domains = ["example.com"]  # your team's own domains: mail between you is internal
# share_with = ["alice", "bob"]  # on servers with ACL: who gets rights on a new folder
# collision = "warn"  # your reply to a thread a colleague answered: "warn", "hold" or "off"
# [accounts.acme]
# name = "Acme Corp"
# domains = ["acme.com"]  # subdomains too; free-mail customers go in addresses = [...]
# sla = "1h"  # this customer's mail is held at most this long
# followup_days = 2  # working days to wait for their answer before reminding you

# Mail you send to people outside the team is watched for an answer; without one, it comes
# back to the top of your INBOX after this many working days.  Per message: bcc
# 2d@followup.invalid (or 4h@, monday@, never@); that address is never sent on.
# [followup]
# days = 3
# workdays = "mon-fri"

# Move a message into a Snoozed/... mailbox and it comes back to INBOX, unread, at that time.
# [snooze]
# morning = "08:00"  # when Tomorrow, Monday and Next week come back
# [snooze.boxes]
# "After lunch" = "13:30"  # your own: "2h", "fri 14:00", "next week"...; "off" removes one

# A short reply to people outside the team whose mail is held, once per sender per day:
# when you will read it, and how to reach you if it cannot wait.  Never to lists, automated
# senders or bulk mail.
# [autoreply]
# enabled = false
# urgent = "call +32 2 123 45 67"  # default: your +urgent address
"""


_LOGIN_OAUTH = """\
[[login]]
# Signs in with OAuth2 ({title}); `commsproxy login` opens the browser once, then commsproxy
# refreshes the access token itself.  Servers, endpoints and scopes come with the provider.
# Your mail program logs in to commsproxy with the local password `commsproxy login` sets.
auth = "oauth2"
provider = "{provider}"
# The address you sign in as.{shared}
{user_comment}username = {username}
{where}
{client_comment}client_id = {client_id}
{extra}
"""


def _oauth_login(
    provider: str, username: str | None, client_id: str | None, client_secret: str | None
) -> str:
    preset = PRESETS.get(provider)
    if preset is None:
        expected = " or ".join(repr(name) for name in PRESETS)
        raise ConfigError(None, "--provider", f"{provider!r}: expected {expected}")
    microsoft = provider == "microsoft365"
    return _LOGIN_OAUTH.format(
        title="Microsoft 365" if microsoft else "Gmail",
        provider=provider,
        shared="  A shared mailbox: you@example.com/shared@example.com" if microsoft else "",
        user_comment="" if username else "# ",
        username=toml_string(username or "me@example.com"),
        where=textwrap.fill(
            f"client_id: {preset.where_client_id}.", 92, initial_indent="# ", subsequent_indent="# "
        ),
        client_comment="" if client_id else "# ",
        client_id=toml_string(client_id or "00000000-0000-0000-0000-000000000000"),
        extra='# tenant = "organizations"  # or your tenant\'s ID or domain\n'
        if microsoft
        else f"{'' if client_secret else '# '}client_secret = "
        f"{toml_string(client_secret or 'shown beside the Client ID')}\n",
    )


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's string escapes are a subset TOML accepts."""
    return json.dumps(value)


@dataclass(frozen=True)
class InitResult:
    config: Path
    cert: Path | None = None
    key: Path | None = None


def write_initial_config(
    path: Path,
    *,
    upstream: str | None = None,
    smtp_upstream: str | None = None,
    username: str | None = None,
    cert: bool = False,
    force: bool = False,
    provider: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> InitResult:
    """Write a commented config to ``path``; with ``cert``, a localhost certificate beside it."""
    path = path.expanduser().absolute()  # the config must not depend on today's directory
    if path.exists() and not force:
        raise ConfigError(path, "", "already exists (use --force to overwrite)")
    cert_path = key_path = None
    if cert:
        cert_path, key_path = path.parent / "localhost.pem", path.parent / "localhost-key.pem"
        write_self_signed(cert_path, key_path)
    login_block = _LOGIN_UPSTREAM.format(
        upstream=toml_string(upstream or "imaps://imap.example.com:993"),
        smtp_upstream=toml_string(smtp_upstream or "smtp+starttls://smtp.example.com:587"),
        smtp_comment="" if smtp_upstream else "# ",
        username=toml_string(username or "me@example.com"),
        user_comment="" if username else "# ",
    )
    if provider is not None:  # OAuth2: the preset names the servers
        login_block = _oauth_login(provider, username, client_id, client_secret)
    text = _TEMPLATE.format(
        login_block=login_block,
        imap="127.0.0.1:1143",
        smtp="127.0.0.1:1587",
        cert=toml_string(str(cert_path or "/path/to/localhost.pem")),
        key=toml_string(str(key_path or "/path/to/localhost-key.pem")),
        tls_comment="" if cert else "# ",
    )
    write_private_text(path, text)  # 0600: it may come to name secrets and the accounts
    return InitResult(path, cert_path, key_path)


def next_steps(config: Config, *, autoconfig: Path | None = None) -> list[str]:
    """What to do after ``init``, in order, for the config just written."""
    proxy = config.proxy
    secure = "STARTTLS" if proxy.tls_cert is not None else "None"
    oauth = [login.username for login in config.logins if login.oauth is not None]
    steps: list[str] = []
    if oauth:
        steps.append(f"commsproxy login {oauth[0]}   # sign in once and choose a local password")
    password = "the local password" if oauth else "your usual password"
    steps.append(
        f"point your mail program at IMAP {proxy.imap} and SMTP {proxy.smtp} "
        f"(connection security {secure}, normal password: {password})"
    )
    if autoconfig is not None:
        domain = autoconfig_domain(config)
        steps.append(
            f"or let Thunderbird fill that in: copy {autoconfig} to the isp/ folder of its "
            f"installation as {domain}.xml, or serve it at "
            f"https://autoconfig.{domain}/mail/{autoconfig.name}"
        )
    steps.append("commsproxy train     # learn what is urgent from your own mail (optional)")
    steps.append("commsproxy service install   # start commsproxy with the computer")
    return steps
