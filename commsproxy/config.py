"""The TOML configuration: where it lives, what it may say, and errors that point at the line.

Every error names the file, the line, the key and what was expected, because a config file is
edited by hand and "invalid config" alone sends the user hunting. Tables this version does not
read yet ([triage], [[batch]], [accounts]) are kept as parsed for the parts that use them.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from .endpoints import Endpoint, EndpointError, ListenAddress, parse_endpoint, parse_listen

__all__ = [
    "Config",
    "ConfigError",
    "LoginConfig",
    "ProxyConfig",
    "default_config_path",
    "load_config",
    "parse_size",
]

APP = "commsproxy"
DEFAULT_IMAP = ListenAddress("127.0.0.1", 1143)
DEFAULT_IMAPS = ListenAddress("127.0.0.1", 1993)
DEFAULT_SMTP = ListenAddress("127.0.0.1", 1587)
ENV_CONFIG = "COMMSPROXY_CONFIG"


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


def default_config_path() -> Path:
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path(APP) / "config.toml"


def default_state_dir() -> Path:
    return platformdirs.user_state_path(APP)


@dataclass(frozen=True)
class LoginConfig:
    """One upstream user the proxy serves (``[[login]]``)."""

    upstream_imap: Endpoint
    upstream_smtp: Endpoint | None = None
    username: str | None = None
    password_command: str | None = None
    cafile: Path | None = None
    allow_insecure: bool = False


@dataclass(frozen=True)
class ProxyConfig:
    """The client-facing side (``[proxy]``)."""

    imap: ListenAddress = DEFAULT_IMAP
    imaps: ListenAddress = DEFAULT_IMAPS
    smtp: ListenAddress = DEFAULT_SMTP
    state_dir: Path = field(default_factory=default_state_dir)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    max_connections: int = 1000
    max_literal: int = 64 << 20
    max_message_size: int = 50 << 20


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    logins: tuple[LoginConfig, ...] = ()
    # Tables read by other parts of the program, as parsed.
    extra: Mapping[str, Any] = field(default_factory=dict)


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

    def get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        self.known.add(key)
        value = self.table.get(key)
        wrong = not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)
        if value is not None and wrong:
            raise self.fail(key, f"expected {what}, got {value!r}")
        return value

    def convert(self, key: str, kind: type | tuple[type, ...], what: str, parse: Any) -> Any:
        value = self.get(key, kind, what)
        if value is None:
            return None
        try:
            return parse(value)
        except (ValueError, EndpointError) as err:
            raise self.fail(key, str(err)) from None

    def check_unknown(self) -> None:
        for key in self.table:
            if key not in self.known:
                known = ", ".join(sorted(self.known))
                raise self.fail(key, f"unknown key (known keys here: {known})")


class _Loader:
    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

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
                current = match.group(1)
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
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(path, "", f"not valid TOML: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(path, "", f"cannot read: {err}") from None
    return _parse(_Loader(path, text), data)


_OTHER_TABLES = ("triage", "batch", "accounts")


def _parse(loader: _Loader, data: Mapping[str, Any]) -> Config:
    for key in data:
        if key not in ("proxy", "login", *_OTHER_TABLES):
            raise loader.error(
                "",
                key,
                "unknown table (expected [proxy], [[login]], [triage], [[batch]] or [accounts])",
            )
    proxy_table = data.get("proxy", {})
    if not isinstance(proxy_table, dict):
        raise loader.error("", "proxy", "expected a table: [proxy]")
    logins = data.get("login", [])
    if not isinstance(logins, list):
        raise loader.error("", "login", "expected one or more [[login]] tables")
    return Config(
        path=loader.path,
        proxy=_parse_proxy(_Reader(loader, proxy_table, "proxy", 0)),
        logins=tuple(_parse_login(_Reader(loader, t, "login", i)) for i, t in enumerate(logins)),
        extra={key: data[key] for key in _OTHER_TABLES if key in data},
    )


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
            raise r.fail(key, f"expected a number above 0, got {value}")
        return value

    config = ProxyConfig(
        imap=r.convert("imap", str, listen, parse_listen) or defaults.imap,
        imaps=r.convert("imaps", str, listen, parse_listen) or defaults.imaps,
        smtp=r.convert("smtp", str, listen, parse_listen) or defaults.smtp,
        state_dir=r.convert("state_dir", str, "a directory path", _path) or defaults.state_dir,
        tls_cert=tls_cert,
        tls_key=tls_key,
        max_connections=positive(
            "max_connections",
            r.get("max_connections", int, "a whole number"),
            defaults.max_connections,
        ),
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
    )
    r.check_unknown()
    for key, value in (("tls_cert", tls_cert), ("tls_key", tls_key)):
        if value is not None and not value.is_file():
            raise r.fail(key, f"no such file: {value}")
    if tls_key is not None and tls_cert is None:
        raise r.fail("tls_key", "tls_key needs tls_cert as well")
    return config


def _parse_login(r: _Reader) -> LoginConfig:
    if not isinstance(r.table, dict):
        raise r.fail("", "expected a table of keys")
    insecure = bool(r.get("allow_insecure", bool, "true or false"))

    def imap(url: str) -> Endpoint:
        return parse_endpoint(url, "imap", allow_insecure=insecure)

    def smtp(url: str) -> Endpoint:
        return parse_endpoint(url, "smtp", allow_insecure=insecure)

    upstream = r.convert("upstream_imap", str, 'a URL such as "imaps://imap.example.com"', imap)
    if upstream is None:
        raise r.fail("upstream_imap", 'missing (e.g. upstream_imap = "imaps://imap.example.com")')
    cafile = r.convert("cafile", str, "a path to a PEM CA file", _path)
    login = LoginConfig(
        upstream_imap=upstream,
        upstream_smtp=r.convert(
            "upstream_smtp", str, 'a URL such as "smtp+starttls://smtp.example.com"', smtp
        ),
        username=r.get("username", str, "a user name"),
        password_command=r.get("password_command", str, "a shell command"),
        cafile=cafile,
        allow_insecure=insecure,
    )
    r.check_unknown()
    if cafile is not None and not cafile.is_file():
        raise r.fail("cafile", f"no such file: {cafile}")
    return login
