"""The log file is rotated: it never grows past its size, and old ones are kept, numbered."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from commsproxy.cli import common


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_rotates_at_its_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root_logger: logging.Logger
) -> None:
    monkeypatch.setattr(common, "LOG_FILE_BYTES", 2000)
    monkeypatch.setattr(common, "LOG_FILE_BACKUPS", 2)
    path = tmp_path / "log" / "commsproxy.log"
    common.setup_logging(False, False, log_file=path)
    for number in range(200):
        logging.getLogger("commsproxy.test").warning("line %d of the rotation test", number)
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["commsproxy.log", "commsproxy.log.1", "commsproxy.log.2"]
    assert all(p.stat().st_size <= 2000 for p in path.parent.iterdir())
    assert "line 199 of" in path.read_text(encoding="utf-8")
