"""The listener's connection limit from the open-file limit: the arithmetic, and the raise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from commsproxy.proxy.imap.open_files import (
    PER_CONNECTION,
    RESERVE,
    UNKNOWN_LIMIT,
    ConnectionLimit,
    connection_limit,
)


@pytest.mark.parametrize(
    ("configured", "open_files", "expected"),
    [
        (None, 1024, ConnectionLimit((1024 - RESERVE) // PER_CONNECTION, 1024)),
        (None, 1_048_576, ConnectionLimit((1_048_576 - RESERVE) // PER_CONNECTION, 1_048_576)),
        (100, 1024, ConnectionLimit(100, 1024)),
        (448, 1024, ConnectionLimit(448, 1024)),  # exactly what the limit allows
        (449, 1024, ConnectionLimit(448, 1024, lowered_from=449)),
        (5000, 1024, ConnectionLimit(448, 1024, lowered_from=5000)),
        (None, RESERVE, ConnectionLimit(1, RESERVE)),  # never none at all
        (None, None, ConnectionLimit(UNKNOWN_LIMIT, None)),
        (50, None, ConnectionLimit(50, None)),
    ],
)
def test_connection_limit(
    configured: int | None, open_files: int | None, expected: ConnectionLimit
) -> None:
    assert connection_limit(configured, open_files) == expected


def test_a_lowered_limit_says_why() -> None:
    why = connection_limit(5000, 1024).warning()
    assert why is not None
    assert "max_connections = 5000" in why
    assert "limit 1024" in why
    assert "taking 448 connections" in why
    assert connection_limit(None, 1024).warning() is None
    assert connection_limit(100, 1024).warning() is None


def _limits_after_raise(soft: int, hard: int) -> str:
    code = (
        "import resource; from commsproxy.proxy.imap.open_files import raise_open_files; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard})); "
        "print(raise_open_files(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_the_soft_limit_is_raised_to_the_hard_limit() -> None:
    # In a child process: a lowered hard limit cannot be raised again.
    assert _limits_after_raise(256, 512) == "512 512 512"
    assert _limits_after_raise(512, 512) == "512 512 512"
