"""pytest fixtures: commsproxy processes in front of the test Dovecot."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args


@pytest.fixture(scope="session")
def proxy(dovecot: Dovecot) -> Iterator[ProxyProcess]:
    """One proxy for the session: TLS to Dovecot upstream, plain/STARTTLS/implicit TLS locally."""
    process = ProxyProcess(proxy_args(dovecot, tls=True)).start()
    yield process
    process.stop()


@pytest.fixture
def make_proxy(dovecot: Dovecot) -> Iterator[Callable[..., ProxyProcess]]:
    """Start extra proxies with their own arguments; all are stopped after the test."""
    started: list[ProxyProcess] = []

    def make(args: Sequence[str] | None = None, *, tls: bool = False, **kw: object) -> ProxyProcess:
        process = ProxyProcess(args if args is not None else proxy_args(dovecot, tls=tls))
        started.append(process)
        return process.start()

    yield make
    for process in started:
        process.stop()
