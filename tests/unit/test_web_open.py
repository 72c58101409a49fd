"""``commsproxy open``: the address with its key when run and its page are up, and a clear
word when they are not (run not running, the page off, nothing on the port)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.cli import main
from commsproxy.triage.runlock import RunLock
from commsproxy.web.access import SECRET_FILE


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on, standing in for the page."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def _config(tmp_path: Path, port: int, *, enabled: bool = True) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[proxy]\nstate_dir = "{tmp_path / "state"}"\n\n'
        f"[web]\nport = {port}\nenabled = {'true' if enabled else 'false'}\n",
        encoding="utf-8",
    )
    return config


def _open(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["open", "--config", str(config), *args])
    return result.exit_code, result.output


def test_prints_the_address_with_the_key(tmp_path: Path, listening: int) -> None:
    config = _config(tmp_path, listening)
    with RunLock(tmp_path / "state"):
        code, output = _open(config, "--print")
    assert code == 0, output
    secret = (tmp_path / "state" / SECRET_FILE).read_text().strip()
    assert output.strip() == f"http://127.0.0.1:{listening}/?key={secret}"


def test_says_when_run_is_not_running(tmp_path: Path, listening: int) -> None:
    code, output = _open(_config(tmp_path, listening), "--print")
    assert code == 1
    assert "`commsproxy run` is not running" in output
    assert "--state-dir" in output


def test_says_when_the_page_is_off(tmp_path: Path, listening: int) -> None:
    code, output = _open(_config(tmp_path, listening, enabled=False), "--print")
    assert code == 1
    assert "[web] enabled = false" in output


def test_says_when_nothing_answers_on_the_port(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = _config(tmp_path, free)
    with RunLock(tmp_path / "state"):
        code, output = _open(config, "--print")
    assert code == 1
    assert f"nothing answers on 127.0.0.1:{free}" in output
    assert "[web] port" in output


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["open", "--help"])
    assert "Example:" in result.output
    assert "--print" in result.output
