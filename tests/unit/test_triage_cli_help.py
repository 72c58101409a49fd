"""Every command's --help ends its description with an ``Example:`` one can copy, and
``commsproxy --help`` lists every command (also those added later, such as ``followups``)."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from commsproxy.cli import main


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if command.hidden:
            continue
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))


COMMANDS = list(_commands(main))


def test_the_commands_are_found() -> None:
    assert ("followups",) in COMMANDS
    assert ("status",) in COMMANDS
    assert len(COMMANDS) > 20


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_each_command_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output, result.output
    example = result.output.split("Example:", 1)[1].split("Options:", 1)[0]
    assert f"commsproxy {' '.join(path)}" in example, example


def test_the_main_help_lists_every_command() -> None:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1]
    names = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {path[0] for path in COMMANDS} == names
