"""Loading the TOML config: a full file, defaults, sizes, and errors that point at file:line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from commsproxy.config import (
    DEFAULT_IMAP,
    DEFAULT_IMAPS,
    DEFAULT_SMTP,
    AccountConfig,
    Config,
    ConfigError,
    ProxyConfig,
    default_config_path,
    load_config,
    parse_size,
)
from commsproxy.endpoints import ListenAddress, Security

from .config_files import assert_config_error, error_cases, write


def test_full_valid_file(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, key = pem
    text = f"""\
# a comment
[proxy]
imap = "127.0.0.1:2143"
imaps = "[::1]:2993"
smtp = "127.0.0.1:2587"
state_dir = "{tmp_path / "state"}"
tls_cert = "{cert}"
tls_key = "{key}"
max_connections = 50
max_literal = "512K"
max_message_size = 1000

[[login]]
upstream_imap = "imaps://imap.example.com"
upstream_smtp = "smtp+starttls://smtp.example.com"
username = "me@example.com"
password_command = "pass show mail/work"
cafile = "{cert}"

[[login]]
upstream_imap = "imap://mail.internal:1143"
username = "ops"
allow_insecure = true

[triage]
enabled = true

[[batch]]
name = "newsletters"
mailbox = "Newsletters"

[accounts.work]
addresses = ["Me@Example.com"]
"""
    path = write(tmp_path, text)
    config = load_config(path, required=True)
    assert config.path == path
    assert config.proxy == ProxyConfig(
        imap=ListenAddress("127.0.0.1", 2143),
        imaps=ListenAddress("::1", 2993),
        smtp=ListenAddress("127.0.0.1", 2587),
        state_dir=tmp_path / "state",
        tls_cert=cert,
        tls_key=key,
        max_connections=50,
        max_literal=512 << 10,
        max_message_size=1000,
    )
    first, second = config.logins
    assert (first.upstream_imap.host, first.upstream_imap.port) == ("imap.example.com", 993)
    assert first.upstream_imap.security is Security.IMPLICIT_TLS
    assert first.upstream_smtp is not None
    assert (first.upstream_smtp.port, first.upstream_smtp.security) == (587, Security.STARTTLS)
    assert first.username == "me@example.com"
    assert first.password_command == "pass show mail/work"
    assert first.cafile == cert
    assert first.allow_insecure is False
    assert second.upstream_imap.security is Security.PLAIN
    assert second.allow_insecure is True
    assert second.upstream_smtp is None
    assert config.accounts.accounts == (
        AccountConfig("work", "work", addresses=("me@example.com",)),
    )
    assert config.triage.enabled
    assert [(b.name, b.mailbox) for b in config.batches] == [("newsletters", "Newsletters")]


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), required=True)
    assert config.logins == ()
    assert (config.proxy.imap, config.proxy.imaps, config.proxy.smtp) == (
        DEFAULT_IMAP,
        DEFAULT_IMAPS,
        DEFAULT_SMTP,
    )
    assert config.proxy.max_literal == 64 << 20
    assert config.proxy.max_message_size == 50 << 20


def test_missing_default_path_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMSPROXY_CONFIG", str(tmp_path / "nowhere.toml"))
    assert default_config_path() == tmp_path / "nowhere.toml"
    assert load_config() == Config()
    assert load_config(tmp_path / "also-missing.toml") == Config()


def test_required_missing_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="no such file") as info:
        load_config(path, required=True)
    assert str(info.value).startswith(str(path))
    assert "commsproxy init" in str(info.value)


def test_path_keys_expand_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(write(tmp_path, '[proxy]\nstate_dir = "~/state"\n'))
    assert config.proxy.state_dir == tmp_path / "state"


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ('"50M"', 50 << 20),
        ('"512K"', 512 << 10),
        ('"2G"', 2 << 30),
        ('"50 MiB"', 50 << 20),
        ('"50mb"', 50 << 20),
        ('"100"', 100),
        ('"100B"', 100),
        ("52428800", 52428800),
    ],
)
def test_sizes_in_config(tmp_path: Path, value: str, size: int) -> None:
    config = load_config(write(tmp_path, f"[proxy]\nmax_literal = {value}\n"))
    assert config.proxy.max_literal == size


@pytest.mark.parametrize(
    ("value", "size"),
    [(0, 0), (52428800, 52428800), ("50M", 50 << 20), (" 512 K ", 512 << 10), ("1GiB", 1 << 30)],
)
def test_parse_size(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["1.5M", "-1", -1, "M", "50T", "", "fifty", True, 1.5])
def test_parse_size_errors(value: object) -> None:
    with pytest.raises(ValueError, match="expected a size"):
        parse_size(value)  # type: ignore[arg-type]


# -- errors that point at file:line, table and key ----------------------------------------------

LOGINS = """\
[[login]]
upstream_imap = "imaps://a.example.com"
username = "first"

[[login]]
upstream_imap = "imaps://a.example.com"
username = 5
"""

ERRORS: list[tuple[str, str, tuple[str, int], str, str]] = [
    # id, file text, (needle, occurrence) locating the line, "[table] key", expectation
    (
        "unknown key in proxy",
        '[proxy]\nimap = "127.0.0.1:1143"\nlisten = "127.0.0.1:1143"\n',
        ("listen =", 1),
        "[proxy] listen",
        "unknown key (known keys here: ",
    ),
    (
        "header with a comment, quoted key",
        '# top\n[proxy]  # client side\n"bogus" = 1\n',
        ("bogus", 1),
        "[proxy] bogus",
        "unknown key",
    ),
    (
        "unknown key in second login",
        LOGINS.replace("username = 5", 'pasword_command = "x"'),
        ("pasword_command", 1),
        "[login] pasword_command",
        "unknown key",
    ),
    (
        "wrong type in second login",
        LOGINS,
        ("username", 2),
        "[login] username",
        "expected a user name, got 5",
    ),
    (
        "whole number expected",
        '[proxy]\nmax_connections = "many"\n',
        ("max_connections", 1),
        "[proxy] max_connections",
        "expected a whole number, got 'many'",
    ),
    (
        "listen address as a number",
        "[proxy]\nimap = 1143\n",
        ("imap", 1),
        "[proxy] imap",
        'expected HOST:PORT, e.g. "127.0.0.1:1143", got 1143',
    ),
    (
        "bad listen address",
        '\n[proxy]\n\nsmtp = "localhost"\n',
        ("smtp", 1),
        "[proxy] smtp",
        "expected HOST:PORT",
    ),
    (
        "boolean expected",
        '[[login]]\nupstream_imap = "imaps://a.example.com"\nallow_insecure = "yes"\n',
        ("allow_insecure", 1),
        "[login] allow_insecure",
        "expected true or false, got 'yes'",
    ),
    (
        "bad size",
        '[proxy]\nmax_message_size = "1.5M"\n',
        ("max_message_size", 1),
        "[proxy] max_message_size",
        "expected a size",
    ),
    (
        "size as a boolean",
        "[proxy]\nmax_literal = true\n",
        ("max_literal", 1),
        "[proxy] max_literal",
        "expected a size",
    ),
    (
        "bad URL",
        '[[login]]\nupstream_imap = "http://imap.example.com"\n',
        ("upstream_imap", 1),
        "[login] upstream_imap",
        "expected a URL starting with imaps://, imap+starttls://, imap://",
    ),
    (
        "bad smtp URL",
        '[[login]]\nupstream_imap = "imaps://a.example.com"\nupstream_smtp = "imaps://x"\n',
        ("upstream_smtp", 1),
        "[login] upstream_smtp",
        "expected a URL starting with smtps://",
    ),
    (
        "plain upstream without allow_insecure",
        '[[login]]\nupstream_imap = "imap://imap.example.com"\n',
        ("upstream_imap", 1),
        "[login] upstream_imap",
        "allow_insecure = true",
    ),
    (
        "missing tls_cert file",
        '[proxy]\ntls_cert = "/nonexistent/localhost.pem"\n',
        ("tls_cert", 1),
        "[proxy] tls_cert",
        "no such file: /nonexistent/localhost.pem",
    ),
    (
        "missing cafile",
        '[[login]]\nupstream_imap = "imaps://a.example.com"\ncafile = "/nonexistent/ca.pem"\n',
        ("cafile", 1),
        "[login] cafile",
        "no such file: /nonexistent/ca.pem",
    ),
    (
        "proxy is not a table",
        "proxy = 5\n",
        ("proxy", 1),
        "proxy",
        "expected a table: [proxy]",
    ),
    (
        "login is not an array of tables",
        'login = "alice"\n',
        ("login", 1),
        "login",
        "expected one or more [[login]] tables",
    ),
]


@error_cases(ERRORS)
def test_error_names_file_line_table_key_and_expectation(
    tmp_path: Path, text: str, where: tuple[str, int], label: str, expectation: str
) -> None:
    assert_config_error(tmp_path, text, where, label, expectation)


def test_tls_key_without_tls_cert(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    text = f'[proxy]\nimap = "127.0.0.1:1143"\ntls_key = "{pem[1]}"\n'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="tls_key needs tls_cert as well") as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}:3: [proxy] tls_key: ")


def test_invalid_toml_names_file_and_position(tmp_path: Path) -> None:
    path = write(tmp_path, '[proxy]\nimap = "127.0.0.1:1143\n')
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    assert "line 2" in str(info.value)


def test_allow_insecure_permits_plain_upstream(tmp_path: Path) -> None:
    text = '[[login]]\nupstream_imap = "imap://imap.example.com"\nallow_insecure = true\n'
    config = load_config(write(tmp_path, text))
    assert config.logins[0].upstream_imap.security is Security.PLAIN


def test_plain_upstream_on_loopback_needs_no_allow_insecure(tmp_path: Path) -> None:
    text = '[[login]]\nupstream_imap = "imap://127.0.0.1:10143"\nupstream_smtp = "smtp://[::1]"\n'
    config = load_config(write(tmp_path, text))
    assert config.logins[0].upstream_imap.port == 10143


@pytest.mark.parametrize(
    ("text", "label", "expectation"),
    [
        (
            '[prox]\nimap = "127.0.0.1:1143"\n',
            "prox",
            "unknown table (expected [proxy], [[login]], [triage], [[batch]], [accounts], [web], "
            "[followup], [snooze] or [autoreply])",
        ),
        (
            '[[login]]\nusername = "alice"\n',
            "[login] upstream_imap",
            'missing (e.g. upstream_imap = "imaps://imap.example.com")',
        ),
    ],
)
def test_error_names_key_and_expectation(
    tmp_path: Path, text: str, label: str, expectation: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(str(path))
    assert f"{label}: {expectation}" in str(info.value)


def test_unknown_top_level_table_error_has_a_line_number(tmp_path: Path) -> None:
    """BUG: the error for an unknown table has no line number.

    ``find_line`` looks for ``key =`` at top level, but a table is a ``[prox]`` header line.
    """
    text = '[proxy]\nimap = "127.0.0.1:1143"\n\n[prox]\nsmtp = "127.0.0.1:1587"\n'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.line == 4
    assert str(info.value).startswith(f"{path}:4: ")


def test_missing_upstream_imap_error_points_at_its_login_table(tmp_path: Path) -> None:
    """BUG: a [[login]] without upstream_imap gets no line number, so with several [[login]]
    tables the user cannot tell which one is meant; the header of that table (line 4) would do.
    """
    text = '[[login]]\nupstream_imap = "imaps://a.example.com"\n\n[[login]]\nusername = "b"\n'
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="upstream_imap: missing") as info:
        load_config(path)
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        (
            '[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "a"\n\n'
            '[[login]]\nupstream_imap = "imaps://b.example.com"\n',
            "each needs a username",
            5,
        ),
        (
            '[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "Me"\n\n'
            '[[login]]\nupstream_imap = "imaps://b.example.com"\nusername = "me"\n',
            "'me' is already the username of [[login]] number 1",
            7,
        ),
    ],
    ids=["several logins, one without username", "the same username twice"],
)
def test_several_logins_need_their_own_usernames(
    tmp_path: Path, text: str, message: str, line: int
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_config(path)
    assert info.value.line == line
    assert "[login] username" in str(info.value)
