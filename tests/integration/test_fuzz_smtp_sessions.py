"""Fuzzing whole SMTP sessions against a real ``commsproxy run`` in front of the test Dovecot.

hypothesis builds client sessions from a grammar of EHLO/MAIL/RCPT/DATA/BDAT/AUTH/RSET and
friends in random orders with valid and malformed arguments, DATA bodies with dot-stuffing,
bare LF and CR, NUL bytes, invalid UTF-8 and long lines, STARTTLS at odd moments, pauses,
split writes and hang-ups (``tests/fuzzing/smtp_sessions.py``), and plays each over a raw
socket; mail it sends goes through Dovecot's submission service to the relay target. After
every session: every line the client got is an SMTP reply (three digits and words) with no
Python internals in it (no ``Error: (``, no exception name), a session still answers QUIT, the
process is up and its log has no traceback or ERROR. Every 25 sessions, and at the end: the
process's memory is under a ceiling and not growing, and imaplib still reads a known message
and smtplib still sends one that arrives.

By default a fixed, derandomized set of examples runs (about half a minute). For a longer run
with fresh random examples, set ``COMMSPROXY_FUZZ_EXAMPLES``::

    COMMSPROXY_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/integration/test_fuzz_smtp_sessions.py

A failure prints the smallest session hypothesis found that still fails, byte for byte.
"""

from __future__ import annotations

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
    wire = Wire(target.proxy.smtp_port)
    outcome = play(wire, session, PROBE, client_context(target.dovecot))
    time.sleep(SETTLE)
    problems = outcome.problems + smtp_problems(bytes(wire.received))
    problems += target.after_example()
    assert not problems, "\n".join(problems) + f"\n\nreceived: {bytes(wire.received)!r:.3000}"


def test_after_fuzzing_the_proxy_still_serves(target: Target) -> None:
    problems = target.final_problems()
    assert not problems, "\n".join(problems) + f"\nRSS per batch (MiB): {target.rss_mib}"
