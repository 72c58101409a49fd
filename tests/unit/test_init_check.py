"""`commsproxy init` ends by trying the login, says what to do next, and writes Thunderbird's
autoconfig file with the listeners' ports and security."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.autoconfig import autoconfig_xml
from commsproxy.cli import main
from commsproxy.config import load_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _servers(xml: str) -> list[tuple[str, str, str, int, str, str, str]]:
    root = ET.fromstring(xml)  # noqa: S314  (commsproxy's own output)
    assert root.tag == "clientConfig"
    assert root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None
    found = []
    for server in provider:
        if server.tag not in ("incomingServer", "outgoingServer"):
            continue
        found.append(
            (
                server.tag,
                server.get("type", ""),
                server.findtext("hostname", ""),
                int(server.findtext("port", "0")),
                server.findtext("socketType", ""),
                server.findtext("authentication", ""),
                server.findtext("username", ""),
            )
        )
    return found


def test_init_writes_autoconfig_with_the_listeners(tmp_path: Path) -> None:
    config_path = tmp_path / "config.toml"
    result = CliRunner().invoke(
        main,
        ["init", "--config", str(config_path), "--username", "me@example.org", "--autoconfig"],
    )
    assert result.exit_code == 0, result.output
    xml_path = tmp_path / "config-v1.1.xml"
    assert f"wrote {xml_path}" in result.output
    xml = xml_path.read_text(encoding="utf-8")
    login = ("password-cleartext", "me@example.org")
    assert _servers(xml) == [
        ("incomingServer", "imap", "127.0.0.1", 1143, "plain", *login),
        ("outgoingServer", "smtp", "127.0.0.1", 1587, "plain", *login),
    ]
    root = ET.fromstring(xml)  # noqa: S314  (commsproxy's own output)
    assert root.findtext("emailProvider/domain") == "example.org"
    assert "isp/ folder of its installation as example.org.xml" in result.output
    assert "https://autoconfig.example.org/mail/config-v1.1.xml" in result.output


def test_autoconfig_follows_the_listener_config(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not read here")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[proxy]\nimap = "127.0.0.1:2143"\nsmtp = "0.0.0.0:2587"\nimaps = "127.0.0.1:2993"\n'
        f'tls_cert = "{cert}"\n\n'
        '[[login]]\nusername = "a@work.example"\nupstream_imap = "imaps://imap.work.example"\n\n'
        '[[login]]\nusername = "b@home.example"\nupstream_imap = "imaps://imap.home.example"\n',
        encoding="utf-8",
    )
    xml = autoconfig_xml(load_config(path, required=True))
    assert [(s[0], s[3], s[4]) for s in _servers(xml)] == [
        ("incomingServer", 2143, "STARTTLS"),
        ("incomingServer", 2993, "SSL"),
        ("outgoingServer", 2587, "STARTTLS"),
    ]
    # Several logins: Thunderbird puts in the address being set up; 0.0.0.0 is reached locally.
    assert {s[6] for s in _servers(xml)} == {"%EMAILADDRESS%"}
    assert {s[2] for s in _servers(xml)} == {"127.0.0.1"}


def test_init_checks_a_named_server_and_prints_next_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("commsproxy.cli.check._ask", lambda prompt: "typed-password")
    port = _closed_port()
    result = CliRunner().invoke(
        main,
        [
            "init",
            "--config",
            str(tmp_path / "config.toml"),
            "--upstream",
            f"imap://127.0.0.1:{port}",
            "--username",
            "me@example.org",
        ],
    )
    # The config is written either way; the check says the server cannot be reached.
    assert result.exit_code == 0, result.output
    assert "checking the login (skip with --no-check):" in result.output
    assert f"IMAP 127.0.0.1:{port}: FAILED (unreachable)" in result.output
    assert "typed-password" not in result.output
    steps = result.output.split("next steps:\n", 1)[1]
    assert "1. point your mail program at IMAP 127.0.0.1:1143 and SMTP 127.0.0.1:1587" in steps
    assert "commsproxy train" in steps
    assert "commsproxy service install" in steps


def test_no_check_and_a_template_server_are_not_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(prompt: str) -> str:
        raise AssertionError("no check expected")

    monkeypatch.setattr("commsproxy.cli.check._ask", never)
    runner = CliRunner()
    named = ["--upstream", "imap://127.0.0.1:1", "--username", "me@example.org", "--no-check"]
    result = runner.invoke(main, ["init", "--config", str(tmp_path / "a.toml"), *named])
    assert result.exit_code == 0, result.output
    assert "checking" not in result.output
    result = runner.invoke(main, ["init", "--config", str(tmp_path / "b.toml")])
    assert result.exit_code == 0, result.output
    assert "checking" not in result.output
    assert "next steps:" in result.output


def test_init_of_an_oauth_login_says_to_sign_in_first(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "init", "--config", str(tmp_path / "c.toml"), "--provider", "microsoft365",
            "--username", "me@example.com", "--client-id", "abc", "--no-check",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    steps = result.output.split("next steps:\n", 1)[1]
    assert steps.splitlines()[0].startswith("  1. commsproxy login me@example.com")
