"""Fixtures for the pure unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from commsproxy.tlscert import write_self_signed


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real localhost certificate and key, for config and TLS context tests."""
    directory = tmp_path_factory.mktemp("pem")
    cert, key = directory / "localhost.pem", directory / "localhost-key.pem"
    write_self_signed(cert, key)
    return cert, key
