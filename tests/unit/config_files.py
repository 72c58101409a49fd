"""Writing config files in tests and checking that an error names the file, line and key."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from commsproxy.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    """The 1-based number of the line holding the ``occurrence``-th ``needle``."""
    seen = 0
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            seen += 1
            if seen == occurrence:
                return number
    raise AssertionError(f"{needle!r} not in the text")


def assert_config_error(
    tmp_path: Path,
    text: str,
    where: tuple[str, int],
    label: str,
    expectation: str,
    *,
    required: bool = False,
) -> None:
    """Loading ``text`` fails with ``path:line: label: ...`` naming ``expectation``."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, required=required)
    line = line_of(text, *where)
    assert info.value.line == line
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}:{line}: {label}: ")
    assert expectation in str(info.value)


def error_cases(cases: Sequence[tuple[Any, ...]]) -> pytest.MarkDecorator:
    """Parametrize a test over ``(id, text, where, label, expectation)`` cases."""
    return pytest.mark.parametrize(
        ("text", "where", "label", "expectation"),
        [case[1:] for case in cases],
        ids=[case[0] for case in cases],
    )
