"""Fuzzing whole SMTP sessions against a real ``commsproxy run`` in front of the test Dovecot.

hypothesis builds client sessions from a grammar of EHLO/MAIL/RCPT/DATA/BDAT/AUTH/RSET and
friends in random orders with valid and malformed arguments, DATA bodies with dot-stuffing,
bare LF and CR, NUL bytes, invalid UTF-8 and long lines, STARTTLS at odd moments, pauses,
split writes and hang-ups (``tests/fuzzing/smtp_sessions.py``), and plays each over a raw
socket; mail it sends goes through Dovecot's submission service to the relay target. After
every session: every line the client got is an SMTP reply (three digits and words) with no
Python internals in it (no ``Error: (``, no exception name), a session still answers QUIT, the
proxy keeps no upstream connection for it, the process is up and its log has no traceback or
ERROR. Every 25 sessions, and at the end: the
process's memory is under a ceiling and not growing, and imaplib still reads a known message
and smtplib still sends one that arrives.

By default a fixed, derandomized set of 80 examples runs (about half a minute). For a longer
run with fresh random examples, set ``COMMSPROXY_FUZZ_EXAMPLES``::

    COMMSPROXY_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/integration/test_fuzz_smtp_sessions.py

A failure prints the smallest session hypothesis found that still fails, byte for byte.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing.checks import smtp_problems
from tests.fuzzing.harness import LONG_RUN, Target, examples
from tests.fuzzing.smtp_sessions import PROBE, sessions
from tests.fuzzing.steps import play
from tests.fuzzing.wire import Wire
from tests.integration.helpers import client_context
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args

EXAMPLES = examples(default=80)
# The proxy logs nothing when an SMTP session ends; a moment lets its last lines arrive.
SETTLE = 0.05


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
def test_fuzzed_smtp_sessions(target: Target, data: st.DataObject) -> None:
    session = data.draw(sessions(*target.user), label="session")
    with Wire(target.proxy.smtp_port) as wire:
        outcome = play(wire, session, PROBE, client_context(target.dovecot))
    time.sleep(SETTLE)
    problems = outcome.problems + smtp_problems(bytes(wire.received))
    problems += target.after_example()
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


def _greeted(target: Target) -> Wire:
    wire = Wire(target.proxy.smtp_port)
    _opened.append(wire)
    assert wire.wait_for_line(rb"220 ", 0, 10) is not None
    return wire


def _ask(wire: Wire, command: bytes, answer: bytes = rb"\d\d\d ") -> bytes:
    since = len(wire.received)
    wire.send(command)
    hit = wire.wait_for_line(answer, since, 15)
    assert hit is not None, f"no answer to {command!r}: {bytes(wire.received)!r}"
    return hit[1]


def test_starttls_after_auth_leaves_no_upstream_login_behind(target: Target) -> None:
    """AUTH, then STARTTLS: TLS starts the session afresh (RFC 3207), and the upstream link
    logged in before must go with the old session, never to a later client."""
    plain = base64.b64encode(b"\0%s\0%s" % (target.user[0].encode(), target.user[1].encode()))
    tls = client_context(target.dovecot)
    for _ in range(5):
        wire = _greeted(target)
        _ask(wire, b"EHLO fuzz.example\r\n")
        assert _ask(wire, b"AUTH PLAIN " + plain + b"\r\n").startswith(b"235")
        assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
        assert wire.start_tls(tls)
        assert _ask(wire, b"QUIT\r\n").startswith(b"221")
        wire.close()
    problems = target.upstream_released()
    # Without AUTH, no session may send through someone else's upstream login.
    for _ in range(30):
        wire = _greeted(target)
        _ask(wire, b"EHLO stranger.example\r\n")
        reply = _ask(wire, b"MAIL FROM:<stranger@localhost>\r\n")
        if reply.startswith(b"250"):
            problems.append(f"MAIL without AUTH accepted: {reply!r}")
        wire.close()
    problems += target.process_problems()
    assert not problems, "\n".join(problems)


def test_starttls_inside_tls_is_refused(target: Target) -> None:
    wire = _greeted(target)
    _ask(wire, b"EHLO fuzz.example\r\n")
    assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
    assert wire.start_tls(client_context(target.dovecot))
    _ask(wire, b"EHLO fuzz.example\r\n")
    reply = _ask(wire, b"STARTTLS\r\n")
    assert reply[:1] in (b"4", b"5"), f"a second STARTTLS inside TLS got {reply!r}"
    assert _ask(wire, b"QUIT\r\n").startswith(b"221")
    wire.close()
    time.sleep(SETTLE)
    assert not target.process_problems()


def test_client_leaving_before_the_tls_handshake_is_no_error(target: Target) -> None:
    wire = _greeted(target)
    _ask(wire, b"EHLO fuzz.example\r\n")
    assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
    wire.close()
    time.sleep(0.5)  # the proxy notices the client is gone
    assert not target.process_problems()
