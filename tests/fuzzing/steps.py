"""What a generated session is made of, and how a :class:`Wire` plays it.

A session is a tuple of steps. ``Send`` writes bytes (maybe in pieces, with pauses); ``Exchange``
writes, waits for the listener's go-ahead (IMAP ``+``, SMTP ``354``/``334``) or its refusal,
and sends the rest only after a go-ahead, as a real client does; ``StartTls`` asks for TLS,
maybe with plaintext pipelined behind the request, and shakes hands when the listener agrees.

Each step says whether it leaves the stream where the listener can still tell commands apart
(``honest``). After an honest session the player ends with a probe (e.g. ``LOGOUT``) that must
be answered: a listener that hangs there is a finding. After a dishonest one (a literal that
lies about its length) the session just hangs up.
"""

from __future__ import annotations

import re
import ssl
import time
from dataclasses import dataclass, field, replace
from typing import Literal

from tests.fuzzing.wire import Wire

# How long the probe waits for its answer before the listener counts as hanging. Dovecot
# answers in milliseconds; the proxy adds a TLS hop.
ANSWER_TIMEOUT = 15.0
# How long an exchange waits for its go-ahead. Not getting one is no finding in itself: an
# earlier line left unfinished (a bare CR) can swallow the request; the probe then tells.
# Right after such a line the wait is short, since that is the likely outcome.
GO_AHEAD_TIMEOUT = 3.0
GLUED_TIMEOUT = 0.3
# Quiet time before an exchange, for answers to earlier commands to arrive (the first command
# that goes upstream may wait for a connection and TLS there).
SETTLE = 0.1
# Exchanges and STARTTLS are written with this in place of their tag; ``numbered`` gives each
# its own, so an answer to one is never taken for another's.
TAG = b"@T@"


@dataclass(frozen=True)
class Send:
    data: bytes
    cuts: tuple[int, ...] = ()
    pause: float = 0.0
    honest: bool = True


@dataclass(frozen=True)
class Exchange:
    """Send ``data``; on a line matching ``go`` send ``then``, on one matching ``stop`` don't."""

    data: bytes
    go: bytes
    stop: bytes
    then: bytes
    honest: bool = True


@dataclass(frozen=True)
class StartTls:
    data: bytes  # the request, with whatever plaintext is pipelined behind it
    go: bytes
    stop: bytes
    # A reply that must not come inside TLS: the answer to the pipelined plaintext.
    injected_reply: bytes | None = None
    honest: bool = True


@dataclass(frozen=True)
class Pause:
    seconds: float
    honest: bool = True


Step = Send | Exchange | StartTls | Pause
Ending = Literal["probe", "close", "reset", "half-close"]


@dataclass(frozen=True)
class Session:
    steps: tuple[Step, ...]
    ending: Ending

    @property
    def honest(self) -> bool:
        return all(step.honest for step in self.steps)


@dataclass(frozen=True)
class Probe:
    """How a protocol begins and ends a session: the listener's ``greeting``; for an honest
    session, send ``data`` at the end and expect ``answer`` and the end of the connection."""

    greeting: bytes
    data: bytes
    answer: bytes


@dataclass
class Outcome:
    """What playing a session showed, beyond the bytes the wire kept."""

    problems: list[str] = field(default_factory=list)


def numbered(steps: list[Step]) -> tuple[Step, ...]:
    """The steps with each exchange's ``TAG`` replaced by a tag of its own (e1, e2, ...)."""
    out: list[Step] = []
    for n, step in enumerate(steps, 1):
        if isinstance(step, Exchange | StartTls):
            tag = b"e%d" % n
            fields = {"data": step.data.replace(TAG, tag), "go": step.go.replace(TAG, tag),
                      "stop": step.stop.replace(TAG, tag)}  # fmt: skip
            if isinstance(step, Exchange):
                fields["then"] = step.then.replace(TAG, tag)
            step = replace(step, **fields)
        out.append(step)
    return tuple(out)


def play(wire: Wire, session: Session, probe: Probe, tls: ssl.SSLContext) -> Outcome:
    outcome = Outcome()
    greeted = wire.wait_for_line(probe.greeting, 0, ANSWER_TIMEOUT)
    if greeted is None:
        if not wire.closed:
            outcome.problems.append(f"no greeting within {ANSWER_TIMEOUT:g} s")
        wire.close()
        return outcome
    mark = greeted[0]  # answers before this are spoken for
    glued = False  # the last bytes sent did not end a line
    for step in session.steps:
        if wire.closed:
            break
        wait = GLUED_TIMEOUT if glued else GO_AHEAD_TIMEOUT
        if isinstance(step, Pause):
            time.sleep(step.seconds)
            wire.drain()
            continue
        glued = not step.data.endswith(b"\n")
        if isinstance(step, Send):
            wire.send(step.data, step.cuts, step.pause)
            continue
        # Answers to what was pipelined before are in by now (the listener is on this machine),
        # so none of them is taken for this step's.
        mark = max(mark, wire.settle(SETTLE))
        wire.send(step.data)
        answer = _await(wire, step.go, step.stop, mark, wait)
        if answer is None:
            break
        go, mark = answer
        if isinstance(step, Exchange):
            if go:
                wire.send(step.then)
                glued = bool(step.then) and not step.then.endswith(b"\n")
        elif go and not wire.tls and wire.start_tls(tls):
            mark = len(wire.received)
            if step.injected_reply is not None:
                _check_not_answered(wire, step.injected_reply, mark, outcome)
    _end(wire, session, probe, outcome)
    return outcome


def _await(wire: Wire, go: bytes, stop: bytes, mark: int, wait: float) -> tuple[bool, int] | None:
    """Wait for a line after ``mark`` matching ``go`` or ``stop``: (went ahead, its end)."""
    hit = wire.wait_for_line(b"(?:" + go + b")|(?:" + stop + b")", mark, wait)
    if hit is None:
        return None
    end, line = hit
    return re.match(go, line) is not None, end


def _check_not_answered(wire: Wire, reply: bytes, since: int, outcome: Outcome) -> None:
    wire.drain(0.2)
    if re.search(reply, bytes(wire.received[since:]), re.MULTILINE):
        outcome.problems.append("plaintext pipelined behind STARTTLS was answered inside TLS")


def _end(wire: Wire, session: Session, probe: Probe, outcome: Outcome) -> None:
    if wire.closed:
        wire.close()
        return
    if session.ending == "probe" and session.honest:
        since = len(wire.received)
        wire.send(probe.data)
        if not wire.closed and wire.wait_for_line(probe.answer, since, ANSWER_TIMEOUT) is None:
            if not wire.closed:
                outcome.problems.append(f"no answer to {probe.data!r} within {ANSWER_TIMEOUT:g} s")
        elif not wire.read_to_end(ANSWER_TIMEOUT):
            outcome.problems.append(f"still open {ANSWER_TIMEOUT:g} s after answering the probe")
        wire.close()
    elif session.ending == "half-close":
        wire.half_close()
        wire.drain(0.2)
        wire.close()
    else:
        wire.close(reset=session.ending == "reset")
