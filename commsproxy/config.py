"""The TOML configuration: where it lives, what it may say, and errors that point at the line.

Every error names the file, the line, the key and what was expected, because a config file is
edited by hand and "invalid config" alone sends the user hunting.
"""

from __future__ import annotations

import functools
import io
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs

from .config_oauth import parse_login_oauth, preset_upstreams
from .endpoints import Endpoint, EndpointError, ListenAddress, parse_endpoint, parse_listen
from .imap.names import INBOX
from .oauth.providers import OAuthProvider
from .schedule import QuietHours, Schedule, ScheduleError, parse_days, parse_times, parse_zone
from .timespec import TimeSpecError, When, parse_when

__all__ = [
    "LABELS",
    "AutoreplyConfig",
    "BatchConfig",
    "Config",
    "ConfigError",
    "ConfigErrors",
    "FollowupConfig",
    "LoginConfig",
    "ProxyConfig",
    "SnoozeConfig",
    "TriageConfig",
    "WebConfig",
    "default_batches",
    "default_config_path",
    "load_config",
    "local_zone",
    "oauth_login_named",
    "parse_size",
]

APP = "commsproxy"
DEFAULT_IMAP = ListenAddress("127.0.0.1", 1143)
DEFAULT_IMAPS = ListenAddress("127.0.0.1", 1993)
DEFAULT_SMTP = ListenAddress("127.0.0.1", 1587)
ENV_CONFIG = "COMMSPROXY_CONFIG"

#: What triage calls a message. Urgent mail is never held; the others may be.
LABELS = ("urgent", "normal", "bulk")
HOLDABLE = ("normal", "bulk")
DEFAULT_RELEASE = ("08:30", "12:30", "16:30")
DEFAULT_DAYS = "mon-fri"


class ConfigError(ValueError):
    """A config problem, located: ``file:line: [table] key: what was expected``."""

    def __init__(self, path: Path | None, key: str, message: str, line: int | None = None) -> None:
        where = str(path) if path else ""
        if where and line is not None:
            where += f":{line}"
        text = ": ".join(part for part in (where, key, message) if part)
        super().__init__(text)
        self.path = path
        self.key = key
        self.line = line


class ConfigErrors(ConfigError):
    """Every problem found in one file, in line order, so one edit can fix them all.

    ``path``, ``key`` and ``line`` are the first one's; ``errors`` holds them all.
    """

    def __init__(self, errors: list[ConfigError]) -> None:
        first = errors[0]
        super().__init__(first.path, first.key, "", first.line)
        self.errors = tuple(errors)
        head = f"{first.path}: {len(errors)} errors" if first.path else f"{len(errors)} errors"
        self.args = ("\n".join([head, *(f"  {error}" for error in errors)]),)


def default_config_path() -> Path:
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path(APP) / "config.toml"


def default_state_dir() -> Path:
    return platformdirs.user_state_path(APP)


def default_log_file() -> Path:
    """``run``'s log file: in the platform's user log dir (``~/.local/state/commsproxy/log``)."""
    return platformdirs.user_log_path(APP) / "commsproxy.log"


@dataclass(frozen=True)
class LoginConfig:
    """One upstream user the proxy serves (``[[login]]``)."""

    upstream_imap: Endpoint
    upstream_smtp: Endpoint | None = None
    username: str | None = None
    password_command: str | None = None
    cafile: Path | None = None
    allow_insecure: bool = False
    #: ``auth = "oauth2"``: who signs this login in (None: the upstream takes a password).
    oauth: OAuthProvider | None = None


@dataclass(frozen=True)
class ProxyConfig:
    """The client-facing side (``[proxy]``)."""

    imap: ListenAddress = DEFAULT_IMAP
    imaps: ListenAddress = DEFAULT_IMAPS
    smtp: ListenAddress = DEFAULT_SMTP
    state_dir: Path = field(default_factory=default_state_dir)
    #: Where ``run`` logs besides the terminal (rotated); None: the terminal only.
    log_file: Path | None = field(default_factory=default_log_file)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_connections: int | None = None  # None: sized from the open-file limit
    max_literal: int = 64 << 20
    max_message_size: int = 50 << 20
    #: All outgoing messages being received or relayed at once; over it SMTP says 452.
    smtp_max_in_flight: int = 200 << 20


def _zone_named(name: str) -> ZoneInfo | None:
    """The IANA zone ``name`` names (also as ``:Area/City`` or a path into a zoneinfo tree)."""
    key = name.strip().removeprefix(":")
    if "zoneinfo/" in key:
        key = key.rpartition("zoneinfo/")[2]
    if not key:
        return None
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


# Only the header, one UTC type and its name: UTC for a machine without a time zone database.
_UTC_TZIF = b"TZif" + bytes(16) + (0).to_bytes(16, "big") + b"\0\0\0\1\0\0\0\4" + bytes(6)
_UTC_TZIF += b"UTC\0"


@functools.cache
def _zone_from_file(path: str) -> ZoneInfo | None:
    """A nameless zone read from ``path``; cached so that configs built from it compare equal."""
    try:
        with open(path, "rb") as file:
            return ZoneInfo.from_file(file, key=None)
    except (OSError, ValueError):
        return None


@functools.cache
def _utc() -> ZoneInfo:
    try:
        return ZoneInfo("UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return ZoneInfo.from_file(io.BytesIO(_UTC_TZIF), key="UTC")


def local_zone() -> ZoneInfo:
    """This machine's time zone, by name where possible, for schedules without ``timezone``.

    A named zone (``$TZ``, else the ``/etc/localtime`` link target) keeps following the tz
    database; a zone read from the file is right today but has no name to show; UTC is the
    last resort on a machine that says nothing about its zone.
    """
    env = os.environ.get("TZ")
    if env and (zone := _zone_named(env)) is not None:
        return zone
    try:
        target = os.readlink("/etc/localtime")
    except OSError:
        target = ""
    if target and (zone := _zone_named(target)) is not None:
        return zone
    return _zone_from_file("/etc/localtime") or _utc()


@dataclass(frozen=True)
class TriageConfig:
    """How new mail is triaged (``[triage]``)."""

    enabled: bool = True
    #: Senders whose mail is always urgent: addresses or ``*@domain``, lower-cased.
    vip: tuple[str, ...] = ()
    #: Senders whose mail is never urgent (held like the model says, at least ``normal``);
    #: the same forms as ``vip``. A sender in both lists is urgent.
    never_urgent: tuple[str, ...] = ()
    #: A model file; None for the bundled default model.
    model: str | None = None
    #: How long a client command may wait for triage of new mail before it goes on without it.
    gate_timeout: float = 5.0
    #: How much of a body the classifier reads: enough to tell, bounded for huge messages.
    body_prefix: int = 64 << 10
    #: Hold mail that is already read when first triaged (by default it is tagged, left alone).
    hold_seen: bool = False
    #: Append one digest message to INBOX per release, so a batch is seen as one arrival.
    digest: bool = True
    #: At a login's first start, read the user's history with senders from the server for at
    #: most this long (seconds) before triage begins; 0: no live history (training's, or none).
    history_seconds: float = 60.0
    #: ... and at most this many messages' headers, newest first.
    history_messages: int = 10_000
    #: Seconds between looks (STATUS UIDNEXT) at Sent for mail sent from other devices.
    history_sent_check: float = 10.0
    #: Seconds triage of a login may fail before one notice says so in its INBOX.
    notice_after: float = 900.0
    #: The longest wait (seconds) between retries of a failing login; retries never stop.
    retry_max: float = 60.0
    #: At a login's first start, mail already in INBOX is tagged and left in place, except
    #: unread mail that arrived (or is dated) within this many seconds; 0: all of it stays.
    first_start_window: float = 86400.0
    #: Mail to the user's address with this tag (``me+urgent@example.com``) always comes
    #: through at once; "" turns it off.
    urgent_tag: str = "urgent"


@dataclass(frozen=True)
class BatchConfig:
    """Mail held together and released together (``[[batch]]``).

    ``mailbox`` uses "/" as the hierarchy separator whatever the server's own delimiter.
    A quiet batch (``quiet = "18:00-08:00"``) has no labels of its own: inside its window it
    holds what no other batch holds (urgent mail still comes through), no other batch is
    released, and its ``schedule`` is the end of each window.
    """

    name: str
    mailbox: str
    labels: tuple[str, ...]
    schedule: Schedule
    reappend: bool = False
    #: Overrides ``[triage] digest`` for this batch; None follows it.
    digest: bool | None = None
    #: A quiet batch's window; None for a batch that holds by label.
    quiet: QuietHours | None = None


def default_batches() -> tuple[BatchConfig, ...]:
    """The batches when none are configured: normal mail three times a workday, bulk once."""
    zone = local_zone()
    days = parse_days(DEFAULT_DAYS)
    return (
        BatchConfig(
            "later", "Later", ("normal",), Schedule(parse_times(DEFAULT_RELEASE), days, zone)
        ),
        BatchConfig("bulk", "Later/Bulk", ("bulk",), Schedule(parse_times(["16:30"]), days, zone)),
    )


@dataclass(frozen=True)
class AccountConfig:
    """One customer account (``[accounts.KEY]``): whose mail is filed into its folder."""

    key: str  # the table's key: stable when the account is renamed
    name: str  # the folder's name under the accounts root
    domains: tuple[str, ...] = ()  # lower-cased; subdomains match too
    addresses: tuple[str, ...] = ()  # lower-cased exact addresses (e.g. a customer's gmail)
    owner: str | None = None  # the colleague who looks after the account
    #: Mail from this account is held at most this long (``sla = "1h"``); None: batches only.
    sla: When | None = None
    #: Working days to wait for this account's answer before a follow-up; None: [followup] days.
    followup_days: int | None = None


@dataclass(frozen=True)
class AccountsConfig:
    """Filing into shared per-account folders (``[accounts]``)."""

    #: Where account folders live, "/"-separated; None: the server's public namespace prefix
    #: + "Accounts" (from NAMESPACE), else a private "Accounts".
    root: str | None = None
    accounts: tuple[AccountConfig, ...] = ()
    #: The accounts model: None for the one ``commsproxy train`` wrote (if any), "none" for rules
    #: only, else a path.
    model: str | None = None
    #: The team's own mail domains: mail between colleagues is internal, not a customer's.
    internal_domains: tuple[str, ...] = ()
    #: Who gets rights on a new account folder (IMAP ACL identifiers), and which rights.
    share_with: tuple[str, ...] = ()
    share_rights: str = "lrwstipekx"
    #: Seconds between looks at the account folders for colleagues' replies.
    team_scan: float = 10.0
    #: A reply to a thread a colleague answered since the user's copy came: "warn" (sent, with
    #: a notice in INBOX), "hold" (refused, kept in Drafts/Collision) or "off".
    collision: str = "warn"

    def account(self, key_or_name: str) -> AccountConfig | None:
        wanted = key_or_name.casefold()
        for account in self.accounts:
            if wanted in (account.key.casefold(), account.name.casefold()):
                return account
        return None


#: The local page's default port (``[web] port``); it listens on 127.0.0.1 only.
DEFAULT_WEB_PORT = 1180


@dataclass(frozen=True)
class WebConfig:
    """The local page (``[web]``): served by ``run`` on 127.0.0.1, opened by ``commsproxy open``."""

    enabled: bool = True
    port: int = DEFAULT_WEB_PORT


#: The snooze mailboxes there are unless ``[snooze.boxes]`` says otherwise: name -> when.
DEFAULT_SNOOZE_BOXES = (
    ("Tomorrow", "tomorrow"),
    ("Monday", "monday"),
    ("Next week", "next week"),
    ("In 2 hours", "in 2 hours"),
)


@dataclass(frozen=True)
class FollowupConfig:
    """Sent mail watched for an answer (``[followup]``)."""

    enabled: bool = True
    #: Working days without an answer before the sent message comes back as a reminder.
    days: int = 3
    workdays: frozenset[int] = frozenset(range(5))


@dataclass(frozen=True)
class SnoozeConfig:
    """Snooze mailboxes (``[snooze]``): mail moved into one comes back to INBOX at its time."""

    enabled: bool = True
    root: str = "Snoozed"  # "/"-separated, like batch mailboxes
    morning: time = time(8, 0)  # when "tomorrow", "monday", "next week" come back
    #: (mailbox name under ``root``, when), in the order the client lists them.
    boxes: tuple[tuple[str, When], ...] = tuple((n, parse_when(w)) for n, w in DEFAULT_SNOOZE_BOXES)


@dataclass(frozen=True)
class AutoreplyConfig:
    """One reply per outside sender per day saying when held mail is read (``[autoreply]``)."""

    enabled: bool = False
    #: The reply's text; {release} becomes the time the mail will be read, {urgent} how to reach
    #: the user at once. None: the built-in text.
    message: str | None = None
    #: How to reach the user when it cannot wait (e.g. "call +32 2 123 45 67"); None: write to
    #: the ``+urgent`` address.
    urgent: str | None = None


@dataclass(frozen=True)
class Config:
    """The whole config file.

    ``batches`` holds mail by label until its release time; a label no batch holds (always
    urgent, and any other the configured batches leave out) is delivered at once. Configured
    ``[[batch]]`` tables replace the default batches rather than add to them.
    """

    path: Path | None = None
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    logins: tuple[LoginConfig, ...] = ()
    triage: TriageConfig = field(default_factory=TriageConfig)
    batches: tuple[BatchConfig, ...] = field(default_factory=default_batches)
    accounts: AccountsConfig = field(default_factory=AccountsConfig)
    web: WebConfig = field(default_factory=WebConfig)
    followup: FollowupConfig = field(default_factory=FollowupConfig)
    snooze: SnoozeConfig = field(default_factory=SnoozeConfig)
    autoreply: AutoreplyConfig = field(default_factory=AutoreplyConfig)


_SIZE = re.compile(r"^\s*(\d+)\s*([KMG]i?B?|B)?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """Bytes from ``52428800``, ``"50M"``, ``"50 MiB"``, ``"512K"``."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f'expected a size such as 52428800 or "50M", got {value!r}')
    unit = (match.group(2) or "B")[0].upper()
    return int(match.group(1)) << {"B": 0, "K": 10, "M": 20, "G": 30}[unit]


class _Reader:
    """Reads one table, checking each key's type and remembering which keys it knows."""

    def __init__(self, loader: _Loader, table: Mapping[str, Any], name: str, index: int) -> None:
        self.loader, self.table, self.name, self.index = loader, table, name, index
        self.known: set[str] = set()

    def fail(self, key: str, message: str) -> ConfigError:
        return self.loader.error(self.name, key, message, self.index)

    def problem(self, key: str, message: str) -> None:
        """Record an error in ``key`` and go on checking the table (``fail`` stops it)."""
        self.loader.record(self.fail(key, message))

    def get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        """The value of ``key``, or None when it is missing or of the wrong type (recorded, so
        the rest of the table is still checked)."""
        self.known.add(key)
        value = self.table.get(key)
        wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        if value is not None and wrong:
            self.loader.record(self.fail(key, f"expected {what}, got {value!r}"))
            return None
        return value

    def convert(self, key: str, kind: type | tuple[type, ...], what: str, parse: Any) -> Any:
        value = self.get(key, kind, what)
        if value is None:
            return None
        try:
            return parse(value)
        except (ValueError, EndpointError) as err:
            self.loader.record(self.fail(key, str(err)))
            return None

    def check_unknown(self) -> None:
        for key in self.table:
            if key not in self.known:
                known = ", ".join(sorted(self.known))
                self.loader.record(self.fail(key, f"unknown key (known keys here: {known})"))


_T = TypeVar("_T")


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.errors: list[ConfigError] = []

    def record(self, error: ConfigError) -> None:
        """Keep ``error`` for the report; a key that failed once is not reported again (a wrong
        value is then also "missing" to the checks after it)."""
        if not any((e.key, e.line) == (error.key, error.line) for e in self.errors):
            self.errors.append(error)

    def attempt(self, parse: Callable[[], _T], fallback: _T) -> _T:
        """``parse()`` one table; on an error, record it and go on with ``fallback``.

        A table with errors is ``fallback`` also when its parse went on to the end: checks
        between tables (distinct usernames, mailboxes, domains) would only repeat its errors.
        """
        before = len(self.errors)
        try:
            result = parse()
        except ConfigError as error:
            self.record(error)
            return fallback
        return fallback if len(self.errors) > before else result

    def raise_errors(self) -> None:
        if not self.errors:
            return
        errors = sorted(self.errors, key=lambda e: e.line if e.line is not None else 1 << 30)
        raise errors[0] if len(errors) == 1 else ConfigErrors(errors)

    def error(self, table: str, key: str, message: str, index: int = 0) -> ConfigError:
        label = f"[{table}] {key}" if table else key
        line = self.find_line(table, key, index)
        if line is None:
            # A missing key, or a whole table: point at the table's header instead.
            line = self.find_line(table or key, "", index)
        return ConfigError(self.path, label, message, line)

    def find_line(self, table: str, key: str, index: int = 0) -> int | None:
        """The line of ``key`` in the ``index``-th ``[table]``/``[[table]]`` (1-based), or of
        that table's header when ``key`` is empty; None if not found."""
        current, seen = "", 0 if not table else -1
        header = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
        assignment = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for number, text in enumerate(self.lines, 1):
            match = header.match(text)
            if match is not None:
                # [accounts."acme.com"] is the table accounts.acme.com
                current = re.sub(r"\s*\.\s*", ".", match.group(1).replace('"', ""))
                if current == table:
                    seen += 1
                    if not key and seen == index:
                        return number
                continue
            if key and current == table and seen == index and assignment.match(text):
                return number
        return None


def load_config(path: Path | None = None, *, required: bool = False) -> Config:
    """Load the config at ``path`` (default: the platform's config dir or $COMMSPROXY_CONFIG).

    A missing default file gives the built-in defaults; a missing file named on purpose
    (``required``) is an error.
    """
    path = path or default_config_path()
    if not path.exists():
        if required:
            raise ConfigError(path, "", "no such file (write one with `commsproxy init`)")
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(path, "", f"cannot read: {err}") from None
    return parse_config_text(path, text)


def parse_config_text(path: Path, text: str) -> Config:
    """The config in ``text`` (errors name ``path``): also checks an edit before it is saved."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(path, "", f"not valid TOML: {err}") from None
    return _parse(_Loader(path, text), data)


_TABLES = (
    "proxy",
    "login",
    "triage",
    "batch",
    "accounts",
    "web",
    "followup",
    "snooze",
    "autoreply",
)


def _parse(loader: _Loader, data: Mapping[str, Any]) -> Config:
    """Every table is checked even after an error in another, so that one report lists all."""
    for key in data:
        if key not in _TABLES:
            loader.record(
                loader.error(
                    "",
                    key,
                    "unknown table (expected [proxy], [[login]], [triage], [[batch]], "
                    "[accounts], [web], [followup], [snooze] or [autoreply])",
                )
            )

    def table(name: str, kind: type, default: Any, expected: str) -> Any:
        value = data.get(name, default)
        if value is not None and not isinstance(value, kind):
            loader.record(loader.error("", name, expected))
            return default
        return value

    proxy_table = table("proxy", dict, {}, "expected a table: [proxy]")
    login_tables = table("login", list, [], "expected one or more [[login]] tables")
    triage_table = table("triage", dict, {}, "expected a table: [triage]")
    batch_tables = table(
        "batch", list, None, "expected one or more [[batch]] tables (two brackets)"
    )
    accounts_table = table("accounts", dict, {}, "expected a table: [accounts]")
    web_table = table("web", dict, {}, "expected a table: [web]")
    followup_table = table("followup", dict, {}, "expected a table: [followup]")
    snooze_table = table("snooze", dict, {}, "expected a table: [snooze]")
    autoreply_table = table("autoreply", dict, {}, "expected a table: [autoreply]")
    logins: list[tuple[int, LoginConfig]] = []
    for index, login_table in enumerate(login_tables):
        reader = _Reader(loader, login_table, "login", index)
        login = loader.attempt(functools.partial(_parse_login, reader), None)
        if login is not None:
            logins.append((index, login))
    config = Config(
        path=loader.path,
        proxy=loader.attempt(
            lambda: _parse_proxy(_Reader(loader, proxy_table, "proxy", 0)), ProxyConfig()
        ),
        logins=_check_logins(loader, logins),
        triage=loader.attempt(
            lambda: _parse_triage(_Reader(loader, triage_table, "triage", 0)), TriageConfig()
        ),
        batches=default_batches() if batch_tables is None else _parse_batches(loader, batch_tables),
        accounts=_parse_accounts(loader, accounts_table),
        web=loader.attempt(lambda: _parse_web(_Reader(loader, web_table, "web", 0)), WebConfig()),
        followup=loader.attempt(
            lambda: _parse_followup(_Reader(loader, followup_table, "followup", 0)),
            FollowupConfig(),
        ),
        snooze=loader.attempt(lambda: _parse_snooze(loader, snooze_table), SnoozeConfig()),
        autoreply=loader.attempt(
            lambda: _parse_autoreply(_Reader(loader, autoreply_table, "autoreply", 0)),
            AutoreplyConfig(),
        ),
    )
    loader.raise_errors()
    return config


def _path(value: str) -> Path:
    return Path(value).expanduser()


def _parse_proxy(r: _Reader) -> ProxyConfig:
    defaults = ProxyConfig()
    listen = 'HOST:PORT, e.g. "127.0.0.1:1143"'
    size = 'a size such as 52428800 or "50M"'
    tls_cert = r.convert("tls_cert", str, "a path to a PEM certificate", _path)
    tls_key = r.convert("tls_key", str, "a path to a PEM private key", _path)

    def positive(key: str, value: int | None, default: int) -> int:
        if value is None:
            return default
        if value < 1:
            r.problem(key, f"expected a number above 0, got {value}")
            return default
        return value

    config = ProxyConfig(
        imap=r.convert("imap", str, listen, parse_listen) or defaults.imap,
        imaps=r.convert("imaps", str, listen, parse_listen) or defaults.imaps,
        smtp=r.convert("smtp", str, listen, parse_listen) or defaults.smtp,
        state_dir=r.convert("state_dir", str, "a directory path", _path) or defaults.state_dir,
        log_file=_log_file(r, defaults.log_file),
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_connections=positive(
            "max_connections",
            r.get("max_connections", int, "a whole number"),
            defaults.max_connections or 0,
        )
        or None,
        max_literal=positive(
            "max_literal",
            r.convert("max_literal", (int, str), size, parse_size),
            defaults.max_literal,
        ),
        max_message_size=positive(
            "max_message_size",
            r.convert("max_message_size", (int, str), size, parse_size),
            defaults.max_message_size,
        ),
        smtp_max_in_flight=positive(
            "smtp_max_in_flight",
            r.convert("smtp_max_in_flight", (int, str), size, parse_size),
            defaults.smtp_max_in_flight,
        ),
    )
    r.check_unknown()
    if config.smtp_max_in_flight < config.max_message_size:
        r.problem(
            "smtp_max_in_flight",
            f"{config.smtp_max_in_flight} is below max_message_size ({config.max_message_size}): "
            "the largest message could never be sent",
        )
    for key, value in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if value is not None and not value.is_file():
            r.problem(key, f"no such file: {value}")
    if tls_key is not None and tls_cert is None:
        raise r.fail("tls_key", "tls_key needs tls_cert as well")
    return config


def _log_file(r: _Reader, default: Path | None) -> Path | None:
    """``log_file = "PATH"``, or ``false`` (or ``"none"``) for no log file."""
    flag = r.table.get("log_file")
    if isinstance(flag, bool):  # the reader takes no bool where a string is expected
        r.known.add("log_file")
        return default if flag else None
    value = r.get("log_file", str, "a file path, or false for no log file")
    if value is None:
        return default
    if value.strip().lower() in ("", "none"):
        return None
    return _path(value)


def _parse_login(r: _Reader) -> LoginConfig:
    if not isinstance(r.table, dict):
        raise r.fail("", "expected a table of keys")
    insecure = bool(r.get("allow_insecure", bool, "true or false"))

    def imap(url: str) -> Endpoint:
        return parse_endpoint(url, "imap", allow_insecure=insecure)

    def smtp(url: str) -> Endpoint:
        return parse_endpoint(url, "smtp", allow_insecure=insecure)

    oauth = parse_login_oauth(r)
    preset_imap, preset_smtp = preset_upstreams(oauth) if oauth else (None, None)
    upstream = r.convert("upstream_imap", str, 'a URL such as "imaps://imap.example.com"', imap)
    if upstream is None and preset_imap:
        upstream = imap(preset_imap)
    if upstream is None:
        raise r.fail("upstream_imap", 'missing (e.g. upstream_imap = "imaps://imap.example.com")')
    cafile = r.convert("cafile", str, "a path to a PEM CA file", _path)
    upstream_smtp = r.convert(
        "upstream_smtp", str, 'a URL such as "smtp+starttls://smtp.example.com"', smtp
    )
    login = LoginConfig(
        upstream_imap=upstream,
        upstream_smtp=upstream_smtp or (smtp(preset_smtp) if preset_smtp else None),
        username=r.get("username", str, "a user name"),
        password_command=r.get("password_command", str, "a shell command"),
        cafile=cafile,
        allow_insecure=insecure,
        oauth=oauth,
    )
    r.check_unknown()
    if oauth is not None and not login.username:
        raise r.fail("username", "missing: an OAuth2 login needs the address it signs in as")
    if oauth is not None and login.password_command:
        raise r.fail("password_command", "an OAuth2 login signs in with a token, not a password")
    if cafile is not None and not cafile.is_file():
        raise r.fail("cafile", f"no such file: {cafile}")
    return login


def _check_logins(
    loader: _Loader, logins: list[tuple[int, LoginConfig]]
) -> tuple[LoginConfig, ...]:
    """With several logins a client is routed by its user name, so each needs its own.

    ``logins`` pairs each parsed login with its table's index (a broken table is left out).
    """
    if len(logins) < 2:
        return tuple(login for _, login in logins)
    seen: dict[str, int] = {}
    for index, login in logins:
        if not login.username:
            loader.record(loader.error(
                "login", "username", "missing: with several [[login]], each needs a username "
                "(clients are routed to a login by the user name they log in with)", index,
            ))  # fmt: skip
            continue
        name = login.username.strip().lower()
        if name in seen:
            loader.record(loader.error(
                "login", "username", f"{login.username!r} is already the username of "
                f"[[login]] number {seen[name] + 1}", index,
            ))  # fmt: skip
            continue
        seen[name] = index
    return tuple(login for _, login in logins)


_VIP = re.compile(r"^(\*|[^\s@*]+)@[^\s@*.]+(\.[^\s@*.]+)*$")


def _parse_triage(r: _Reader) -> TriageConfig:
    defaults = TriageConfig()
    vips = _senders(r, "vip")
    never_urgent = _senders(r, "never_urgent")
    model = r.get("model", str, 'a path to a model file, or "default"')
    if model is not None and model.strip().lower() in ("default", "bundled"):
        model = None
    elif model is not None:
        if not model.strip():
            r.problem("model", 'expected a path to a model file, or "default"')
        model = str(_path(model))
    timeout = r.get("gate_timeout", (int, float), "a number of seconds")
    if timeout is not None and not 0 < timeout <= 60:
        r.problem("gate_timeout", f"expected seconds above 0 and at most 60, got {timeout}")
    prefix = r.convert("body_prefix", (int, str), 'a size such as "64K"', parse_size)
    if prefix is not None and not 1 << 10 <= prefix <= 16 << 20:
        r.problem("body_prefix", f'expected a size from "1K" to "16M", got {prefix}')
    history_seconds = _number(r, "history_seconds", "seconds", 0, 3600)
    history_messages = r.get("history_messages", int, "a whole number of messages")
    if history_messages is not None and not 1 <= history_messages <= 1_000_000:
        r.problem("history_messages", f"expected 1 to 1000000 messages, got {history_messages}")
    sent_check = _number(r, "history_sent_check", "seconds", 1, 3600)
    notice_after = _number(r, "notice_after", "seconds", 1, 7 * 86400)
    retry_max = _number(r, "retry_max", "seconds", 1, 3600)
    window = _number(r, "first_start_window", "seconds", 0, 7 * 86400)
    tag = r.get("urgent_tag", str, 'a tag such as "urgent" (for me+urgent@...), or ""')
    if tag is not None and tag and not _TAG.match(tag):
        r.problem("urgent_tag", f'{tag!r}: expected letters, digits, "-" or "_", e.g. "urgent"')
        tag = None
    config = TriageConfig(
        enabled=_flag(r, "enabled", defaults.enabled),
        vip=vips,
        never_urgent=never_urgent,
        model=model,
        gate_timeout=defaults.gate_timeout if timeout is None else float(timeout),
        body_prefix=defaults.body_prefix if prefix is None else prefix,
        hold_seen=_flag(r, "hold_seen", defaults.hold_seen),
        digest=_flag(r, "digest", defaults.digest),
        history_seconds=defaults.history_seconds if history_seconds is None else history_seconds,
        history_messages=history_messages or defaults.history_messages,
        history_sent_check=defaults.history_sent_check if sent_check is None else sent_check,
        notice_after=defaults.notice_after if notice_after is None else notice_after,
        retry_max=defaults.retry_max if retry_max is None else retry_max,
        first_start_window=defaults.first_start_window if window is None else window,
        urgent_tag=defaults.urgent_tag if tag is None else tag.lower(),
    )
    r.check_unknown()
    return config


def _parse_web(r: _Reader) -> WebConfig:
    port = r.get("port", int, "a port number such as 1180")
    if port is not None and not 1 <= port <= 65535:
        r.problem("port", f"expected a port from 1 to 65535, got {port}")
        port = None
    config = WebConfig(
        enabled=_flag(r, "enabled", True), port=DEFAULT_WEB_PORT if port is None else port
    )
    r.check_unknown()
    return config


_TAG = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _parse_followup(r: _Reader) -> FollowupConfig:
    defaults = FollowupConfig()
    days = r.get("days", int, "a whole number of working days")
    if days is not None and not 1 <= days <= 60:
        r.problem("days", f"expected 1 to 60 working days, got {days}")
        days = None
    workdays = r.convert("workdays", str, 'days such as "mon-fri"', parse_days)
    config = FollowupConfig(
        enabled=_flag(r, "enabled", defaults.enabled),
        days=defaults.days if days is None else days,
        workdays=defaults.workdays if workdays is None else workdays,
    )
    r.check_unknown()
    return config


def _parse_snooze(loader: _Loader, table: Mapping[str, Any]) -> SnoozeConfig:
    """``[snooze]`` and its ``[snooze.boxes]``: name = when ("off" removes a built-in box)."""
    settings = {k: v for k, v in table.items() if k != "boxes"}
    r = _Reader(loader, settings, "snooze", 0)
    r.known.add("boxes")
    defaults = SnoozeConfig()
    root = r.get("root", str, 'a mailbox such as "Snoozed"')
    if root is not None:
        root = root.strip().strip("/")
        problem = _mailbox_problem(root)
        if problem:
            raise r.fail("root", f"{root!r}: {problem}")
    morning = r.get("morning", str, 'a time such as "08:00"')
    if morning is not None:
        try:
            morning_time = parse_times([morning])[0]
        except ScheduleError as err:
            raise r.fail("morning", str(err)) from None
    boxes = dict(defaults.boxes)
    extra = table.get("boxes", {})
    if not isinstance(extra, dict):
        raise r.fail("boxes", 'expected a table such as [snooze.boxes] "After lunch" = "13:30"')
    for name, rule in extra.items():
        if not isinstance(rule, str):
            raise loader.error("snooze.boxes", name, 'expected a time such as "tomorrow" or "off"')
        if "/" in name or not name.strip() or "*" in name or "%" in name:
            raise loader.error(
                "snooze.boxes", name, 'expected a mailbox name without "/", "*", "%"'
            )
        if rule.strip().lower() == "off":
            boxes.pop(name, None)
            continue
        try:
            boxes[name] = parse_when(rule)
        except TimeSpecError as err:
            raise loader.error("snooze.boxes", name, str(err)) from None
    config = SnoozeConfig(
        enabled=_flag(r, "enabled", defaults.enabled),
        root=defaults.root if root is None else root,
        morning=defaults.morning if morning is None else morning_time,
        boxes=tuple(boxes.items()),
    )
    r.check_unknown()
    return config


def _parse_autoreply(r: _Reader) -> AutoreplyConfig:
    message = r.get("message", str, "the reply's text ({release} and {urgent} are filled in)")
    if message is not None:
        try:
            message.format(release="", urgent="")
        except (KeyError, IndexError, ValueError) as err:
            raise r.fail(
                "message", f"{err}: only {{release}} and {{urgent}} can be filled in"
            ) from None
    urgent = r.get("urgent", str, 'how to reach you at once, e.g. "call +32 2 123 45 67"')
    config = AutoreplyConfig(
        enabled=_flag(r, "enabled", False),
        message=message,
        urgent=urgent.strip() if urgent and urgent.strip() else None,
    )
    r.check_unknown()
    return config


def _senders(r: _Reader, key: str) -> tuple[str, ...]:
    """A list of sender patterns (``boss@example.com`` or ``*@example.com``), lower-cased."""
    example = 'a list of addresses such as ["boss@example.com", "*@example.com"]'
    patterns: list[str] = []
    for entry in r.get(key, list, example) or []:
        text = entry.strip().lower() if isinstance(entry, str) else ""
        if not _VIP.match(text):
            r.problem(key, f'{entry!r}: expected an address ("boss@example.com") or "*@domain"')
        elif text not in patterns:
            patterns.append(text)
    return tuple(patterns)


def _number(r: _Reader, key: str, unit: str, low: float, high: float) -> float | None:
    """A number of ``unit`` from ``low`` to ``high``, inclusive; None when not given."""
    value = r.get(key, (int, float), f"a number of {unit}")
    if value is None:
        return None
    if not low <= value <= high:  # also refuses nan
        r.problem(key, f"expected {unit} from {low:g} to {high:g}, got {value}")
        return None
    return float(value)


def _flag(r: _Reader, key: str, default: bool) -> bool:
    value = r.get(key, bool, "true or false")
    return default if value is None else bool(value)


def _parse_batches(loader: _Loader, tables: list[Any]) -> tuple[BatchConfig, ...]:
    """Each ``[[batch]]``, then the rules between them: distinct names, mailboxes and labels."""
    batches: list[BatchConfig] = []
    for index, table in enumerate(tables):
        r = _Reader(loader, table, "batch", index)
        batch = loader.attempt(functools.partial(_parse_batch, r), None)
        if batch is None or not loader.attempt(
            functools.partial(_distinct, r, batches, batch), False
        ):
            continue
        batches.append(batch)
    return tuple(batches)


def _distinct(r: _Reader, batches: list[BatchConfig], batch: BatchConfig) -> bool:
    """True when ``batch`` shares no name, mailbox or label with the ``batches`` before it, and
    is not a second quiet batch (a quiet batch holds no labels of its own)."""
    for other in batches:
        if other.name == batch.name:
            raise r.fail("name", f"{batch.name!r}: another batch has this name already")
        if other.mailbox == batch.mailbox:
            raise r.fail(
                "mailbox",
                f"{batch.mailbox!r}: batch {other.name!r} holds its mail there already; "
                "give each batch its own mailbox",
            )
        if batch.quiet is not None and other.quiet is not None:
            raise r.fail(
                "quiet",
                f"batch {other.name!r} is a quiet batch already; one quiet batch can have "
                "several days, not two windows",
            )
        for label in batch.labels:
            if label in other.labels:
                raise r.fail(
                    "labels",
                    f"{label!r} is held by both batch {other.name!r} and batch "
                    f"{batch.name!r}; a label can be held by one batch only",
                )
    return True


_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def _parse_batch(r: _Reader) -> BatchConfig:
    if not isinstance(r.table, dict):
        raise r.fail("", "expected a table of keys")
    name = r.get("name", str, 'a name such as "later"')
    if name is None:
        raise r.fail("name", 'missing (e.g. name = "later")')
    if not _NAME.match(name):
        raise r.fail("name", f"{name!r}: expected letters, digits, '-' and '_' only")
    mailbox = r.get("mailbox", str, 'a mailbox such as "Later"')
    if mailbox is None:
        raise r.fail("mailbox", 'missing (e.g. mailbox = "Later")')
    problem = _mailbox_problem(mailbox)
    if problem:
        raise r.fail("mailbox", f"{mailbox!r}: {problem}")
    zone_name = r.get("timezone", str, "a time zone such as Europe/Amsterdam")
    try:
        zone = local_zone() if zone_name is None else parse_zone(zone_name)
    except ScheduleError as err:
        raise r.fail("timezone", str(err)) from None
    # Looked up only when present, so a misspelt key's hint lists the keys of a plain batch.
    quiet = r.get("quiet", str, 'a window such as "18:00-08:00"') if "quiet" in r.table else None
    if quiet is not None:
        labels: tuple[str, ...] = ()
        window = _quiet_hours(r, quiet)
        schedule = window.releases(zone)
    else:
        labels = _batch_labels(r)
        window = None
        schedule = _release_schedule(r, zone)
    batch = BatchConfig(
        name=name,
        mailbox=mailbox,
        labels=labels,
        schedule=schedule,
        reappend=_flag(r, "reappend", False),
        digest=r.get("digest", bool, "true or false"),
        quiet=window,
    )
    r.check_unknown()
    return batch


def _quiet_hours(r: _Reader, window: str) -> QuietHours:
    """A quiet batch's ``quiet`` and ``days``; it takes neither ``labels`` nor ``release``."""
    for key, what in (("labels", "labels"), ("release", "release times")):
        r.known.add(key)
        if key in r.table:
            raise r.fail(
                key,
                f"a quiet batch has no {what} of its own: it holds what no other batch holds "
                "during its window and is released when the window ends",
            )
    days = r.get("days", str, 'days such as "mon-fri"')
    try:
        hours = QuietHours.parse(window, "daily")
    except ScheduleError as err:
        raise r.fail("quiet", str(err)) from None
    try:
        return hours if days is None else replace(hours, days=parse_days(days))
    except ScheduleError as err:
        raise r.fail("days", str(err)) from None


def _release_schedule(r: _Reader, zone: ZoneInfo) -> Schedule:
    """``release`` as a list of times with ``days``, or a table of day specs to times."""
    release = r.get(
        "release",
        (list, dict),
        'a list of times such as ["08:30", "16:30"], or times by day such as '
        '{ "mon-thu" = ["08:30", "16:30"], fri = ["08:30"] }',
    )
    days = r.get("days", str, 'days such as "mon-fri"')
    if isinstance(release, dict):
        if days is not None:
            raise r.fail(
                "days",
                "release names its days already (a table of days to times); "
                "remove days, or make release a plain list of times",
            )
        try:
            return Schedule.parse_table(release, zone)
        except ScheduleError as err:
            raise r.fail("release", str(err)) from None
    if release is None:
        release = list(DEFAULT_RELEASE)
    try:
        if not all(isinstance(value, str) for value in release):
            raise ScheduleError(f'expected times as "HH:MM" strings, got {release!r}')
        times = parse_times(release)
    except ScheduleError as err:
        raise r.fail("release", str(err)) from None
    try:
        weekdays = parse_days(DEFAULT_DAYS if days is None else days)
    except ScheduleError as err:
        raise r.fail("days", str(err)) from None
    return Schedule(times, weekdays, zone)


def _batch_labels(r: _Reader) -> tuple[str, ...]:
    values = r.get("labels", list, 'a list of labels such as ["normal", "bulk"]')
    if values is None:
        return ("normal",)
    labels: list[str] = []
    for value in values:
        if value == "urgent":
            raise r.fail("labels", "urgent mail is always delivered at once; it cannot be held")
        if value not in HOLDABLE:
            expected = " or ".join(repr(label) for label in HOLDABLE)
            raise r.fail("labels", f"{value!r}: expected {expected}")
        if value not in labels:
            labels.append(value)
    if not labels:
        raise r.fail("labels", 'expected at least one label, e.g. ["normal"]')
    return tuple(labels)


def _mailbox_problem(mailbox: str) -> str | None:
    """Why ``mailbox`` cannot hold mail, or None: held mail must be out of the INBOX's way."""
    parts = mailbox.split("/")
    if any(not part for part in parts):
        return 'expected a path such as "Later/Bulk" (no empty parts, no leading or trailing "/")'
    if parts[0].upper() == INBOX:
        return 'held mail cannot stay in INBOX or a mailbox under it; choose one such as "Later"'
    if "*" in mailbox or "%" in mailbox:
        return 'expected no "*" or "%" (they are IMAP wildcards)'
    return None


_DOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_ADDRESS = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
_ACCOUNT_SETTINGS = (
    "root",
    "model",
    "internal_domains",
    "share_with",
    "share_rights",
    "team_scan",
    "collision",
)


def _parse_accounts(loader: _Loader, table: Mapping[str, Any]) -> AccountsConfig:
    """``[accounts]``: settings, and one sub-table per account (any key holding a table)."""
    accounts: list[AccountConfig] = []
    for key, value in table.items():
        if isinstance(value, dict):
            reader = _Reader(loader, value, f"accounts.{key}", 0)
            account = loader.attempt(functools.partial(_parse_account, reader, key), None)
            if account is not None:
                accounts.append(account)
    _check_accounts(loader, accounts)
    return loader.attempt(
        lambda: _parse_account_settings(loader, table, tuple(accounts)), AccountsConfig()
    )


def _parse_account_settings(
    loader: _Loader, table: Mapping[str, Any], accounts: tuple[AccountConfig, ...]
) -> AccountsConfig:
    settings = {k: v for k, v in table.items() if not isinstance(v, dict)}
    r = _Reader(loader, settings, "accounts", 0)
    root = r.get("root", str, 'a folder path such as "Public/Accounts"')
    if root is not None:
        root = root.strip().strip("/")
        problem = _folder_problem(root)
        if problem:
            raise r.fail("root", f"{table['root']!r}: {problem}")
    model = r.get("model", str, 'a path to a model file written by `commsproxy train`, or "none"')
    if model is not None and not model.strip():
        raise r.fail(
            "model", 'expected a path to a model file written by `commsproxy train`, or "none"'
        )
    if model is not None and model.strip().lower() not in ("none", "auto"):
        model = str(_path(model))
    elif model is not None:
        model = None if model.strip().lower() == "auto" else "none"
    domains = _list_of(r, "internal_domains", _DOMAIN, 'domains such as ["example.com"]')
    share = r.get("share_with", list, 'IMAP user names such as ["alice", "bob"]') or []
    if not all(isinstance(who, str) and who.strip() for who in share):
        raise r.fail("share_with", f'expected user names such as ["alice", "bob"], got {share!r}')
    rights = r.get("share_rights", str, 'IMAP ACL rights such as "lrwstipekx"')
    if rights is not None and not re.fullmatch(r"[lrswipkxteacd]+", rights):
        raise r.fail("share_rights", f'{rights!r}: expected RFC 4314 rights such as "lrswipte"')
    scan = r.get("team_scan", (int, float), "a number of seconds")
    if scan is not None and not 1 <= scan <= 3600:
        raise r.fail("team_scan", f"expected seconds from 1 to 3600, got {scan}")
    collision = r.get("collision", str, '"warn", "hold" or "off"')
    if collision is not None and collision not in ("warn", "hold", "off"):
        raise r.fail("collision", f'{collision!r}: expected "warn", "hold" or "off"')
    r.check_unknown()
    defaults = AccountsConfig()
    return AccountsConfig(
        root=root,
        accounts=accounts,
        model=model,
        internal_domains=domains,
        share_with=tuple(who.strip() for who in share),
        share_rights=rights or defaults.share_rights,
        team_scan=defaults.team_scan if scan is None else float(scan),
        collision=defaults.collision if collision is None else collision,
    )


def _parse_account(r: _Reader, key: str) -> AccountConfig:
    name = r.get("name", str, 'the folder name, such as "Acme Corp"')
    name = (name if name is not None else key).strip()
    problem = _folder_problem(name) or ("/" in name and 'expected no "/" in an account name')
    if problem:
        raise r.fail("name", f"{name!r}: {problem}")
    owner = r.get("owner", str, 'a colleague such as "alice@example.com"')
    sla = r.convert("sla", str, 'a time such as "1h" or "30m"', parse_when)
    if sla is not None and not sla.minutes:
        raise r.fail("sla", 'expected hours or minutes, such as "1h" or "30m"')
    followup_days = r.get("followup_days", int, "a whole number of working days (0: none)")
    if followup_days is not None and not 0 <= followup_days <= 60:
        raise r.fail("followup_days", f"expected 0 to 60 working days, got {followup_days}")
    account = AccountConfig(
        key=key,
        name=name,
        domains=_list_of(r, "domains", _DOMAIN, 'domains such as ["acme.com"]'),
        addresses=_list_of(r, "addresses", _ADDRESS, 'addresses such as ["ceo@gmail.com"]'),
        owner=owner.strip() if owner else None,
        sla=sla,
        followup_days=followup_days,
    )
    r.check_unknown()
    return account


def _list_of(r: _Reader, key: str, pattern: re.Pattern[str], example: str) -> tuple[str, ...]:
    values: list[str] = []
    for value in r.get(key, list, example) or []:
        text = value.strip().lower().removeprefix("@") if isinstance(value, str) else ""
        if not pattern.match(text):
            raise r.fail(key, f"{value!r}: expected {example}")
        if text not in values:
            values.append(text)
    return tuple(values)


def _check_accounts(loader: _Loader, accounts: list[AccountConfig]) -> None:
    """One domain or address, one account: otherwise which folder gets the mail is a guess."""
    owners: dict[str, AccountConfig] = {}
    names: dict[str, AccountConfig] = {}
    for account in accounts:
        table = f"accounts.{account.key}"
        other = names.setdefault(account.name.casefold(), account)
        if other is not account:
            loader.record(
                loader.error(table, "name", f"{account.name!r}: [accounts.{other.key}] too")
            )
        for key, values in (("domains", account.domains), ("addresses", account.addresses)):
            for value in values:
                other = owners.setdefault(value, account)
                if other is not account:
                    loader.record(
                        loader.error(
                            table, key, f"{value!r} belongs to [accounts.{other.key}] already"
                        )
                    )


def _folder_problem(path: str) -> str | None:
    if not path or any(not part.strip() for part in path.split("/")):
        return "expected a folder name (no empty parts)"
    if "*" in path or "%" in path:
        return 'expected no "*" or "%" (they are IMAP wildcards)'
    if path.split("/")[0].upper() == INBOX:
        return "account folders cannot live under INBOX"
    return None


def oauth_login_named(logins: Sequence[LoginConfig], username: str | None) -> LoginConfig:
    """The ``auth = "oauth2"`` login ``username`` names (or the only one); ValueError says why."""
    candidates = [login for login in logins if login.oauth is not None]
    if not candidates:
        raise ValueError(
            'no [[login]] has auth = "oauth2" (write one with '
            "`commsproxy init --provider microsoft365` or `--provider gmail`)"
        )
    if username is None:
        if len(candidates) > 1:
            names = ", ".join(str(login.username) for login in candidates)
            raise ValueError(f"several OAuth2 logins ({names}): name one")
        return candidates[0]
    wanted = username.strip().lower()
    for login in candidates:
        if (login.username or "").strip().lower() == wanted:
            return login
    names = ", ".join(str(login.username) for login in candidates)
    raise ValueError(f"{username!r} is not an OAuth2 [[login]] username (those are: {names})")
