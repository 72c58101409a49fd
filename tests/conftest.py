"""Shared fixtures: the private Dovecot test bed and commsproxy instances in front of it."""

import os
from collections.abc import Iterator

import pytest

pytest_plugins = [
    "tests.testbed.fixtures",
    "tests.testbed.proxy_fixtures",
    "tests.testbed.oauth_fixtures",
]


@pytest.fixture(autouse=True, scope="session")
def _private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default state and log dirs of every commsproxy a test starts are the session's own,
    never the user's (``run`` writes its log file there unless told otherwise)."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state-home"))
    yield
    if saved is None:
        os.environ.pop("XDG_STATE_HOME", None)
    else:
        os.environ["XDG_STATE_HOME"] = saved
