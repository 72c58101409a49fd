"""``commsproxy deliver`` and ``commsproxy urgent``: thin commands whose errors name the flag."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from commsproxy.cli import main

CONFIG = """\
# mine
[proxy]
state_dir = "{state}"

[[login]]
username = "me@example.com"
upstream_imap = "imaps://imap.example.com"

[triage]
vip = ["boss@example.com"]  # the boss
"""


def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state"), encoding="utf-8")
    return path


def test_urgent_always_never_forget_and_list(tmp_path: Path) -> None:
    path = config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["urgent", "always", "*@Big.example", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "*@big.example is always urgent now" in result.output
    result = runner.invoke(main, ["urgent", "never", "boss@example.com", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "taken out of [triage] vip" in result.output
    result = runner.invoke(main, ["urgent", "list", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "always urgent ([triage] vip):\n  *@big.example" in result.output
    assert "never urgent ([triage] never_urgent):\n  boss@example.com" in result.output
    result = runner.invoke(main, ["urgent", "forget", "boss@example.com", "--config", str(path)])
    assert result.exit_code == 0, result.output
    listed = runner.invoke(main, ["urgent", "list", "--json", "--config", str(path)])
    assert json.loads(listed.output) == {"vip": ["*@big.example"], "never_urgent": []}
    assert path.read_text(encoding="utf-8").startswith("# mine\n[proxy]\n")


def test_a_bad_pattern_names_the_argument_and_changes_nothing(tmp_path: Path) -> None:
    path = config(tmp_path)
    result = CliRunner().invoke(main, ["urgent", "always", "boss", "--config", str(path)])
    assert result.exit_code == 2
    assert "Invalid value for PATTERN" in result.output
    assert path.read_text(encoding="utf-8") == CONFIG.format(state=tmp_path / "state")


def test_deliver_names_the_bad_flag_or_argument(tmp_path: Path) -> None:
    path = config(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["deliver", "not an id", "--config", str(path)])
    assert result.exit_code == 2
    assert "Invalid value for MESSAGE-ID" in result.output
    result = runner.invoke(main, ["deliver", "<a@x>", "--login", "bob", "--config", str(path)])
    assert result.exit_code == 2
    assert "Invalid value for --login" in result.output
    assert "me@example.com" in result.output
    assert not (tmp_path / "state").exists()  # nothing queued, no state file made


def test_deliver_without_run_or_password_command_says_what_is_missing(tmp_path: Path) -> None:
    path = config(tmp_path)
    result = CliRunner().invoke(main, ["deliver", "<a@x>", "--config", str(path)])
    assert result.exit_code == 1
    assert "needs username and password_command" in result.output
