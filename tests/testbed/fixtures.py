"""pytest fixtures for the private Dovecot test bed.

Loaded as a plugin by tests/conftest.py (``pytest_plugins = ["tests.testbed.fixtures"]``).
One Dovecot serves the whole session; tests stay independent by each taking a fresh user.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.testbed.dovecot import Dovecot


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """A running private Dovecot (IMAP, LMTP, submission), stopped after the session."""
    with Dovecot() as instance:
        yield instance


@pytest.fixture
def imap_user(dovecot: Dovecot) -> tuple[str, str]:
    """``(username, password)`` of a user no other test has touched."""
    return dovecot.new_user()
