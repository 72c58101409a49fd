"""Shared fixtures: the private Dovecot test bed and commsproxy instances in front of it.

The suite runs in parallel with pytest-xdist (``make test``: ``-n 3``, ``--dist loadgroup``
from pyproject.toml). Each worker has its own session fixtures (Dovecot, OAuth2 server,
Chromium), so tests are spread one by one, except where they share more than the session:
a module whose tests share a module- or class-scoped fixture runs on one worker (its fixture
is set up once, its tests in order), and every browser test runs on one worker (one Chromium).
Tests that time themselves against a budget are marked ``alone``; ``make test`` runs them
after the parallel part, with nothing else running.
"""

import os
from collections.abc import Iterator

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
)
_SHARED_SCOPES = frozenset({"module", "class", "package"})


def _xdist_group(item: pytest.Item) -> str | None:
    """The worker group ``item`` belongs to, or None when it may run on any worker."""
    if item.nodeid.startswith("tests/browser/"):
        return "browser"
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return None
    for definitions in info.name2fixturedefs.values():
        if definitions and definitions[-1].scope in _SHARED_SCOPES:
            return item.nodeid.split("::", 1)[0]
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: xdist reads the xdist_group marks in its own hook, after this one.
    for item in items:
        group = _xdist_group(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if item.nodeid.startswith(ALONE):
            item.add_marker(pytest.mark.alone)


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
