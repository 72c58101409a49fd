"""Shared fixtures: the private Dovecot test bed and commsproxy instances in front of it.

The suite runs in parallel with pytest-xdist (``make test`` passes ``-n 3``): tests go to the
workers one by one, except a module's tests that share a module-scoped fixture and the browser
tests, which each stay together on one worker (tests/testbed/parallel.py). Tests that time
themselves against a budget are marked ``alone``; ``make test`` runs them after the parallel
part, with nothing else running.
"""

import os
from collections.abc import Iterator
from typing import Any

import pytest

pytest_plugins = [
    "tests.testbed.fixtures",
    "tests.testbed.proxy_fixtures",
    "tests.testbed.oauth_fixtures",
]

# Tests whose assertions compare wall-clock time with a budget (or count 2-second token
# refreshes): other tests running beside them on a 2-CPU machine would make them fail.
ALONE = (
    "tests/unit/test_mail.py::test_huge_attachment_is_never_read_whole",
    "tests/unit/test_mail.py::test_huge_html_body_is_bounded",
    "tests/integration/test_testbed.py::test_failed_login_is_quick_and_leaves_no_penalty",
    "tests/integration/test_oauth_day.py::test_a_day_at_debug_level_leaves_no_secret_behind",
    # These count refreshes of 2-second tokens too (a slow step under load makes one more).
    "tests/integration/test_imap_oauth.py",
    "tests/integration/test_smtp_oauth.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(ALONE):
            item.add_marker(pytest.mark.alone)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may be absent
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``-n`` and xdist's default distribution, the scheduler that keeps groups together."""
    if config.getvalue("dist") != "load":
        return None  # a --dist the user asked for
    from tests.testbed.parallel import SharedFixtureScheduling

    return SharedFixtureScheduling(config, log)


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
