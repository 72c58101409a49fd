"""Fuzzing whole IMAP sessions against a real ``commsproxy run`` in front of the test Dovecot.

hypothesis builds client sessions from a grammar of valid and broken commands, literals that
tell the truth or lie, AUTHENTICATE, IDLE, STARTTLS at odd moments, pauses, split writes and
hang-ups (``tests/fuzzing/imap_sessions.py``) and plays each over a raw socket, to the plain
port or, one time in four, the implicit TLS port. After every session: every line the client
got is a proper IMAP response with no Python internals in it, a session that stayed well framed
is still answered (LOGOUT), the session logs its end, the proxy keeps no upstream connection
for it, the process is up and its log has no traceback or ERROR. Every 25 sessions, and at the
end: the process's memory is under a ceiling and not growing, and imaplib still reads a known
message and smtplib still sends.

By default a fixed, derandomized set of 40 examples runs (under twenty seconds): a check that
every kind of step still plays out cleanly, not a search. The faults fuzzing found came from
runs of hundreds of random sessions, and each is kept as a reduced session of its own (below
and in the relay tests), so doubling the default run buys little. For a longer run with fresh
random examples, set ``COMMSPROXY_FUZZ_EXAMPLES``::

    COMMSPROXY_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/integration/test_fuzz_imap_sessions.py

A failure prints the smallest session hypothesis found that still fails, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing.checks import imap_problems
from tests.fuzzing.harness import LONG_RUN, Target, examples
from tests.fuzzing.imap_sessions import PROBE, sessions
from tests.fuzzing.steps import play
from tests.fuzzing.wire import Wire
from tests.integration.helpers import client_context
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args

EXAMPLES = examples(default=40)


@pytest.fixture(scope="module")
def target(dovecot: Dovecot) -> Iterator[Target]:
    process = ProxyProcess(proxy_args(dovecot, tls=True)).start()
    yield Target.start(process, dovecot)
    process.stop()


@settings(
    max_examples=EXAMPLES,
    derandomize=not LONG_RUN,
    database=None if not LONG_RUN else settings.default.database,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_fuzzed_imap_sessions(target: Target, data: st.DataObject) -> None:
    session = data.draw(sessions(*target.user), label="session")
    tls = client_context(target.dovecot)
    if data.draw(st.integers(0, 3), label="implicit TLS") == 0:
        wire = Wire(target.proxy.imaps_port, tls=tls)
    else:
        wire = Wire(target.proxy.imap_port)
    port = wire.sock.getsockname()[1]
    with wire:
        outcome = play(wire, session, PROBE, tls)
    problems = outcome.problems + imap_problems(bytes(wire.received))
    problems += target.after_example(imap_port=port)
    assert not problems, "\n".join(problems) + f"\n\nreceived: {bytes(wire.received)!r:.3000}"


def test_after_fuzzing_the_proxy_still_serves(target: Target) -> None:
    problems = target.final_problems()
    assert not problems, "\n".join(problems) + f"\nRSS per batch (MiB): {target.rss_mib}"


# Sessions the fuzzer found, reduced to what matters; each is checked on its own too.

_opened: list[Wire] = []


@pytest.fixture(autouse=True)
def _close_wires() -> Iterator[None]:
    """Connections a reduced session opened are closed even when it fails halfway."""
    yield
    while _opened:
        _opened.pop().close()


def _logged_in(target: Target) -> Wire:
    wire = Wire(target.proxy.imap_port)
    _opened.append(wire)
    assert wire.wait_for_line(rb"\* OK", 0, 10) is not None
    user, password = target.user
    wire.send(b"a LOGIN %s %s\r\n" % (user.encode(), password.encode()))
    assert wire.wait_for_line(rb"a OK", 0, 15) is not None
    return wire


def test_literal_over_the_bound_after_login_ends_the_session_cleanly(target: Target) -> None:
    wire = _logged_in(target)
    port = wire.sock.getsockname()[1]
    wire.send(b"b APPEND INBOX {67108865+}\r\nhello\r\n")
    assert wire.wait_for_line(rb"\* BYE \[TOOBIG\]", 0, 15) is not None
    wire.close()
    problems = target.imap_settled(port) + target.upstream_released()
    assert not problems + target.process_problems()


def test_line_over_the_bound_at_once_ends_the_session_cleanly(target: Target) -> None:
    wire = Wire(target.proxy.imap_port)
    _opened.append(wire)
    port = wire.sock.getsockname()[1]
    wire.send(b"x SEARCH " + b"1," * 600_000 + b"1\r\n")  # before reading the greeting
    assert wire.read_to_end(15)
    assert b"* BYE command line too long" in wire.received
    problems = target.imap_settled(port) + target.upstream_released()
    assert not problems + target.process_problems()


def test_own_refusal_of_a_command_with_an_invalid_tag_is_proper_imap(target: Target) -> None:
    wire = _logged_in(target)
    wire.send(b"\x00e5 STARTTLS\r\n\xff\xfe APPEND INBOX {99999999999}\r\nz NOOP\r\n")
    assert wire.wait_for_line(rb"z OK", 0, 15) is not None
    wire.close()
    assert not imap_problems(bytes(wire.received))
