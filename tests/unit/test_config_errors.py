"""One config error report lists every error in the file, each with its line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from commsproxy.config import ConfigError, ConfigErrors, load_config

from .config_files import line_of, write

SEVERAL = """\
[proxy]
imap = "nowhere"
max_connections = "many"

[[login]]
upstream_imap = "imaps://a.example.com"
username = "me"
pasword_command = "pass show mail"

[triage]
gate_timeout = 500
vip = ["not an address"]

[[batch]]
name = "later"
mailbox = "INBOX/Later"

[colours]
red = 1
"""


def test_every_error_is_listed_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, SEVERAL)
    with pytest.raises(ConfigErrors) as info:
        load_config(path)
    lines = [error.line for error in info.value.errors]
    expected = [
        line_of(SEVERAL, needle)
        for needle in (
            "imap =",
            "max_connections",
            "pasword_command",
            "gate_timeout",
            "vip",
            "mailbox",
            "[colours]",
        )
    ]
    assert lines == expected
    text = str(info.value)
    assert text.startswith(f"{path}: 7 errors\n")
    for label in (
        "[proxy] imap",
        "[proxy] max_connections",
        "[login] pasword_command: unknown key",
        "[triage] gate_timeout",
        "[triage] vip",
        "[batch] mailbox",
        "colours: unknown table",
    ):
        assert label in text
    # Each line of the report is a whole error that names the file and its line.
    for error, row in zip(info.value.errors, text.splitlines()[1:], strict=True):
        assert row == f"  {error}"
        assert row.startswith(f"  {path}:{error.line}: ")
    # The report is a ConfigError, located at its first error, for callers that catch one.
    assert isinstance(info.value, ConfigError)
    assert (info.value.path, info.value.line) == (path, lines[0])


def test_several_errors_in_one_table_are_all_reported(tmp_path: Path) -> None:
    text = '[triage]\ngate_timeout = "soon"\nhold_seen = "yes"\ndigest = 1\ncolour = "red"\n'
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, text))
    assert [e.key for e in info.value.errors] == [
        "[triage] gate_timeout",
        "[triage] hold_seen",
        "[triage] digest",
        "[triage] colour",
    ]


def test_errors_in_several_logins_and_accounts(tmp_path: Path) -> None:
    text = (
        '[[login]]\nusername = "a"\n\n'  # no upstream_imap
        '[[login]]\nupstream_imap = "ftp://b.example.com"\nusername = "b"\n\n'
        '[accounts.acme]\ndomains = ["acme"]\n\n'
        '[accounts.globex]\ndomains = ["globex.com"]\nowner = 5\n'
    )
    with pytest.raises(ConfigErrors) as info:
        load_config(write(tmp_path, text))
    assert [(e.key, e.line) for e in info.value.errors] == [
        ("[login] upstream_imap", 1),
        ("[login] upstream_imap", 5),
        ("[accounts.acme] domains", 9),
        ("[accounts.globex] owner", 13),
    ]


def test_a_wrong_value_is_not_also_reported_missing(tmp_path: Path) -> None:
    """name = 5 is one error, not also "name: missing" from the check after it."""
    text = '[[batch]]\nname = 5\nmailbox = "Later"\n'
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert not isinstance(info.value, ConfigErrors)
    assert str(info.value).count("[batch] name") == 1


def test_a_broken_table_is_left_out_of_the_checks_between_tables(tmp_path: Path) -> None:
    """Two batches where the first is broken: no "another batch has this name" on top."""
    text = (
        '[[batch]]\nname = "later"\nmailbox = "Later"\nlabels = ["urgent"]\n\n'
        '[[batch]]\nname = "later2"\nmailbox = "Later"\n'
    )
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert not isinstance(info.value, ConfigErrors)
    assert info.value.line == 4


@pytest.mark.parametrize(
    ("value", "expected"),
    [('"~/logs/cp.log"', Path("~/logs/cp.log").expanduser()), ("false", None), ('"none"', None)],
)
def test_log_file(tmp_path: Path, value: str, expected: Path | None) -> None:
    config = load_config(write(tmp_path, f"[proxy]\nlog_file = {value}\n"))
    assert config.proxy.log_file == expected


def test_log_file_default_and_wrong_type(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).proxy.log_file is not None
    with pytest.raises(ConfigError, match=r"\[proxy\] log_file: expected a file path, or false"):
        load_config(write(tmp_path, "[proxy]\nlog_file = 3\n"))
