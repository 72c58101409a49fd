"""`commsproxy init`: the written config loads, is not overwritten by accident, keys are private."""

from __future__ import annotations

import os
import re
import stat
from datetime import time
from pathlib import Path

import pytest

from commsproxy.config import ConfigError, TriageConfig, default_batches, load_config
from commsproxy.endpoints import Security
from commsproxy.init import write_initial_config
from commsproxy.service import RunOptions, plan
from commsproxy.timespec import When


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_defaults_load(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    result = write_initial_config(path)
    assert (result.config, result.cert, result.key) == (path, None, None)
    config = load_config(path, required=True)
    (login,) = config.logins
    assert str(login.upstream_imap) == "imap.example.com:993"
    assert login.upstream_smtp is None  # commented out until given
    assert login.username is None
    assert config.proxy.tls_cert is None
    assert config.proxy.tls_key is None
    assert str(config.proxy.imap) == "127.0.0.1:1143"
    assert str(config.proxy.smtp) == "127.0.0.1:1587"
    assert not (tmp_path / "localhost.pem").exists()


@pytest.mark.parametrize(
    ("upstream", "smtp_upstream", "username"),
    [
        ("imaps://imap.example.org", "smtps://smtp.example.org", "me@example.org"),
        ("imap+starttls://imap.example.org:1143", None, "alice"),
        ("imap://127.0.0.1:10143", "smtp://127.0.0.1:10025", None),
        ("imaps://imap.example.org", None, "Émile Zoë"),
    ],
)
def test_given_values_load(
    tmp_path: Path, upstream: str, smtp_upstream: str | None, username: str | None
) -> None:
    path = tmp_path / "config.toml"
    write_initial_config(path, upstream=upstream, smtp_upstream=smtp_upstream, username=username)
    (login,) = load_config(path, required=True).logins
    assert login.upstream_imap.url == upstream
    assert (login.upstream_smtp.url if login.upstream_smtp else None) == smtp_upstream
    assert login.username == username


def test_cert_option(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "config.toml"
    result = write_initial_config(path, upstream="imaps://imap.example.org", cert=True)
    assert result.cert == path.parent / "localhost.pem"
    assert result.key == path.parent / "localhost-key.pem"
    assert result.cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert result.key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert mode(result.key) == 0o600
    config = load_config(path, required=True)
    assert (config.proxy.tls_cert, config.proxy.tls_key) == (result.cert, result.key)
    assert str(config.proxy.imaps) == "127.0.0.1:1993"
    # and the proxy can start from it: the certificate and key load
    the_plan = plan(config, RunOptions())
    assert the_plan.imap.local_tls is not None
    assert the_plan.imap.upstream.security is Security.IMPLICIT_TLS


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"already exists \(use --force to overwrite\)") as info:
        write_initial_config(path, upstream="imaps://imap.example.org", cert=True)
    assert str(info.value).startswith(str(path))
    assert path.read_text(encoding="utf-8") == "# mine\n"
    assert not (tmp_path / "localhost-key.pem").exists()


def test_force_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# mine\n", encoding="utf-8")
    write_initial_config(path, upstream="imaps://imap.example.org", force=True)
    assert load_config(path).logins[0].upstream_imap.host == "imap.example.org"


@pytest.mark.parametrize(
    "username",
    [
        pytest.param("CORP\\alice", id="windows-domain-backslash"),
        pytest.param('alice "the boss"', id="double-quote"),
    ],
)
def test_written_config_loads_whatever_the_username(tmp_path: Path, username: str) -> None:
    """BUG: values are pasted into TOML basic strings without escaping.

    An Exchange/AD login such as ``CORP\\alice`` is written as ``username = "CORP\\alice"``,
    which is an invalid escape in TOML, so the config init just wrote does not load.
    """
    path = tmp_path / "config.toml"
    write_initial_config(path, username=username)
    assert load_config(path, required=True).logins[0].username == username


def test_written_config_loads_from_a_directory_with_a_quote(tmp_path: Path) -> None:
    """BUG: the certificate paths are not escaped either (``tls_cert = "/home/o"brien/..."``)."""
    path = tmp_path / 'o"brien' / "config.toml"
    result = write_initial_config(path, cert=True)
    assert load_config(path, required=True).proxy.tls_cert == result.cert


def test_cert_config_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BUG: with a relative --config, the certificate paths are written relative to the current
    directory, and load_config resolves them against whatever directory `run` starts in."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    write_initial_config(Path("cfg/config.toml"), cert=True)
    monkeypatch.chdir(tmp_path / "elsewhere")
    config = load_config(tmp_path / "cfg" / "config.toml", required=True)
    assert config.proxy.tls_cert == tmp_path / "cfg" / "localhost.pem"


def test_forced_cert_makes_an_existing_key_private(tmp_path: Path) -> None:
    """BUG: the key is opened with O_CREAT mode 0600, which only applies to a new file.

    ``init --cert --force`` over a key left world-readable keeps its old mode for the new key.
    """
    path = tmp_path / "config.toml"
    key = tmp_path / "localhost-key.pem"
    key.write_text("old\n", encoding="utf-8")
    key.chmod(0o644)
    path.write_text("# old\n", encoding="utf-8")
    write_initial_config(path, cert=True, force=True)
    assert mode(key) == 0o600


@pytest.mark.parametrize("cert", [False, True], ids=["plain", "cert"])
def test_the_config_and_its_new_folder_are_owner_only(tmp_path: Path, cert: bool) -> None:
    old = os.umask(0o022)  # a usual umask, whatever the test runner's
    try:
        path = tmp_path / "new" / "folder" / "config.toml"
        result = write_initial_config(path, cert=cert)
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    for written in (result.cert, result.key):
        assert written is None or mode(written) == 0o600
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_force_replaces_a_world_readable_config_with_an_owner_only_one(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("# old\n", encoding="utf-8")
    path.chmod(0o644)
    write_initial_config(path, force=True)
    assert mode(path) == 0o600
    assert "commsproxy configuration" in path.read_text(encoding="utf-8")


def test_commsproxys_own_config_folder_is_tightened_when_it_exists_already(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    own = tmp_path / "xdg" / "commsproxy"
    own.mkdir(parents=True)
    own.chmod(0o755)
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    chosen.chmod(0o755)
    write_initial_config(own / "config.toml")
    write_initial_config(chosen / "config.toml")
    assert mode(own) == 0o700
    assert mode(chosen) == 0o755  # a folder the user chose keeps its mode; the file is private
    assert mode(chosen / "config.toml") == 0o600


def test_triage_and_batch_examples_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template leaves triage at its defaults; uncommenting its examples gives what they say."""
    monkeypatch.setenv("TZ", "UTC")
    path = tmp_path / "config.toml"
    write_initial_config(path)
    config = load_config(path, required=True)
    assert config.triage == TriageConfig()
    assert config.batches == default_batches()
    text = path.read_text(encoding="utf-8")
    head, triage = text.split("[triage]\n")
    example = re.compile(
        r"^# (\[\[batch\]\]|\[(?:accounts|snooze)[.a-z]*\]|\[followup\]|\[autoreply\]"
        r'|[a-z_]+ = |"[A-Za-z ]+" = )',
        re.MULTILINE,
    )
    path.write_text(head + "[triage]\n" + example.sub(r"\1", triage), encoding="utf-8")
    config = load_config(path, required=True)
    assert config.triage.vip == ("boss@example.com", "*@family.example")
    assert config.triage.model is None
    assert config.triage.gate_timeout == 5.0
    (batch,) = config.batches
    (later, _bulk) = default_batches()
    assert (batch.name, batch.mailbox, batch.labels) == (later.name, later.mailbox, later.labels)
    assert (batch.schedule.times, batch.schedule.days) == (
        later.schedule.times,
        later.schedule.days,
    )
    assert str(batch.schedule.zone) == "Europe/Amsterdam"
    assert config.accounts.root == "Public/Accounts"
    assert config.accounts.internal_domains == ("example.com",)
    assert [(a.key, a.name, a.domains) for a in config.accounts.accounts] == [
        ("acme", "Acme Corp", ("acme.com",))
    ]
    assert config.triage.urgent_tag == "urgent"
    assert config.accounts.collision == "warn"
    (acme,) = config.accounts.accounts
    assert (acme.sla, acme.followup_days) == (When(minutes=60), 2)
    assert (config.followup.days, config.followup.workdays) == (3, frozenset(range(5)))
    assert config.snooze.morning == time(8, 0)
    assert ("After lunch", When(at=time(13, 30))) in config.snooze.boxes
    assert not config.autoreply.enabled
    assert config.autoreply.urgent == "call +32 2 123 45 67"
