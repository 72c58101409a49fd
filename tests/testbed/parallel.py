"""How pytest-xdist hands tests to its workers: one by one, except what must stay together.

Each worker has its own session fixtures (a private Dovecot, the OAuth2 server, Chromium), so
most tests can go to any worker. Two kinds of tests share more than that and stay together,
on one worker, in the order they were collected:

- the tests of a module that defines a module-, class- or package-scoped fixture: the fixture
  is set up once, and tests after the first may build on what earlier ones did;
- every browser test (``tests/browser/``): one Chromium, and each module's ``page_env``.

The groups come from the node ids alone: xdist's scheduler runs in the controlling process,
which collects nothing, so a module's source is read to see whether it defines such a
fixture. (xdist's own ``xdist_group`` marks rewrite node ids, which pytest 9.2 no longer
allows.) Groups go out first, largest first; the single tests follow in collection order,
which puts the slow integration tests before the many quick unit tests.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from xdist.remote import Producer  # type: ignore[import-untyped]
from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

_SHARED_FIXTURE = re.compile(r"""scope\s*=\s*["'](?:module|class|package)["']""")
_TOGETHER_DIRS = ("tests/browser/",)


class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scope scheduling where every test is its own scope but for the groups above."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        self.rootpath = config.rootpath

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid, self.rootpath)


def work_unit(nodeid: str, rootpath: Path) -> str:
    """The group ``nodeid`` goes to a worker with: a directory, a module, or the test alone."""
    path = nodeid.split("::", 1)[0]
    for directory in _TOGETHER_DIRS:
        if path.startswith(directory):
            return directory
    if _defines_shared_fixture(rootpath / path):
        return path
    return nodeid


@functools.cache
def _defines_shared_fixture(module: Path) -> bool:
    try:
        return _SHARED_FIXTURE.search(module.read_text(encoding="utf-8")) is not None
    except OSError:
        return False
