"""The IMAP relay's own Python work per round trip, counted: a measure no other load can move.

The relay's cost on a small round trip is mostly the Python it runs per command and per reply,
and on a machine shared with other work its CPU time moves by a fifth from run to run
(round_trips.py measures it so, against a real Dovecot). This benchmark counts that work
instead: one relay session in this process, its transports replaced by ones that only count
what is written, is fed a command and the server's canned answer, as the transports' callbacks
feed a real session, over and over; a tracer counts the Python calls and bytecode instructions
(opcodes) each round trip runs in commsproxy's code and what it calls (asyncio, sockets and the
event loop are not in it). Without and with the triage gate (a backend that knows INBOX is
triaged, as a caught-up triage does), for NOOP, SELECT INBOX (Dovecot's answer, 10 lines) and
IDLE + DONE. The time per round trip is printed too, for scale (noisy).

    python benchmarks/relay_work.py [--count 200] [--against REV]

``--against REV`` counts the commsproxy of another commit the same way, beside this tree's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from benchlib import REPO, source_of

OPS = ("NOOP", "SELECT", "IDLE")

SELECT_ANSWER = (
    b"* OK [CLOSED] Previous mailbox closed.\r\n"
    b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Triaged $Urgent)\r\n"
    b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft $Triaged $Urgent \\*)]"
    b" Flags permitted.\r\n"
    b"* 1000 EXISTS\r\n* 0 RECENT\r\n* OK [UNSEEN 1] First unseen.\r\n"
    b"* OK [UIDVALIDITY 1796681698] UIDs valid\r\n* OK [UIDNEXT 1001] Predicted next UID\r\n"
    b"* OK [HIGHESTMODSEQ 4] Highest\r\n"
)
UIDVALIDITY, LAST_UID = 1796681698, 1000


class _Transport:
    """Takes what is written and counts the writes."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, chunks: list[bytes]) -> None:
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16384, 65536)

    def is_closing(self) -> bool:
        return False


class _Writer:
    def __init__(self) -> None:
        self.transport = _Transport()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writelines(self, chunks: list[bytes]) -> None:
        self.transport.writelines(chunks)

    def is_closing(self) -> bool:
        return False


class _Triaged:
    """A triage backend that has decided everything in INBOX and heard of nothing new."""

    def login_for(self, user: str) -> str | None:
        return "me"

    def ready(self, login: str) -> bool:
        return True

    async def catch_up(self, *args: Any, **kwargs: Any) -> tuple[int, int] | None:
        return (LAST_UID, LAST_UID)

    def known(self, login: str) -> tuple[int, int] | None:
        return (LAST_UID, LAST_UID)

    def held_uids(self, login: str) -> frozenset[int]:
        return frozenset()

    def decided(self, login: str) -> tuple[int, int] | None:
        return (UIDVALIDITY, LAST_UID)


def _session(gate: bool) -> Any:
    """A relay session logged in as "me" with INBOX selected, its links faked."""
    from commsproxy.endpoints import parse_endpoint
    from commsproxy.imap.session import State
    from commsproxy.proxy.imap.gate import GateHooks
    from commsproxy.proxy.imap.hooks import NoHooks, RelayLimits, SessionParts
    from commsproxy.proxy.imap.relay import Session
    from commsproxy.proxy.routing import UpstreamServer

    endpoint = parse_endpoint("imap://127.0.0.1:1", "imap", allow_insecure=True)
    hooks = GateHooks(_Triaged()) if gate else NoHooks()
    parts = SessionParts(
        upstream=UpstreamServer(endpoint, ssl.create_default_context()),
        local_tls=None,
        limits=RelayLimits(),
        hooks=hooks,
    )
    session = Session(None, _Writer(), parts)  # type: ignore[arg-type]
    session._server.writer = _Writer()  # type: ignore[assignment]
    machine = session.state
    machine.state, machine.user, machine.relaying = State.AUTHENTICATED, "me", True
    trip = _trip(session)
    trip(b"s0 SELECT INBOX\r\n", SELECT_ANSWER + b"s0 OK [READ-WRITE] Select completed\r\n")
    return session


def _trip(session: Any) -> Callable[[bytes, bytes], None]:
    """Hand ``command`` to the session as the client transport's callback does, and ``reply``
    as the upstream transport's does, each while its pump waits with nothing to do."""
    take = getattr(session, "upstream_data", None) or session._take_upstream

    def trip(command: bytes, reply: bytes) -> None:
        session._client_waiting = True
        session.client_data(command)
        session._upstream_waiting = True
        take(reply)

    return trip


def _round_trips(op: str, count: int) -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for i in range(count):
        tag = b"t%05d" % i
        if op == "NOOP":
            out.append((tag + b" NOOP\r\n", tag + b" OK NOOP completed\r\n"))
        elif op == "SELECT":
            done = tag + b" OK [READ-WRITE] Select completed (0.001 + 0.000 secs).\r\n"
            out.append((tag + b" SELECT INBOX\r\n", SELECT_ANSWER + done))
        else:
            out.append((tag + b" IDLE\r\n", b"+ idling\r\n"))
            out.append((b"DONE\r\n", tag + b" OK Idle completed\r\n"))
    return out


@contextlib.contextmanager
def _counting() -> Iterator[dict[str, int]]:
    counts = {"calls": 0, "opcodes": 0}

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "opcode":
            counts["opcodes"] += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        counts["calls"] += 1
        return local

    sys.settrace(tracer)
    try:
        yield counts
    finally:
        sys.settrace(None)


def measure(count: int) -> dict[str, dict[str, float]]:
    """Per path and op: calls and opcodes per round trip (counted), and µs (timed, untraced)."""
    out: dict[str, dict[str, float]] = {}
    for gate in (False, True):
        for op in OPS:
            trips = _round_trips(op, count)
            trip = _trip(_session(gate))
            for command, reply in trips[:20]:  # warm: the caches a real session warms
                trip(command, reply)
            with _counting() as counts:
                for command, reply in trips:
                    trip(command, reply)
            trip = _trip(_session(gate))
            began = time.process_time()
            for command, reply in trips * 5:
                trip(command, reply)
            seconds = (time.process_time() - began) / 5
            per = count  # IDLE counts its two steps as one round trip
            out[f"{'gate' if gate else 'relay'} {op}"] = {
                "calls": counts["calls"] / per,
                "opcodes": counts["opcodes"] / per,
                "us": seconds / per * 1e6,
            }
    return out


def _run_in(root: Path, count: int) -> dict[str, dict[str, float]]:
    """This file's ``measure`` with the commsproxy of ``root``, in a process of its own."""
    done = subprocess.run(
        [sys.executable, __file__, "--count", str(count), "--json-only", "--root", str(root)],
        capture_output=True,
        check=True,
        text=True,
    )
    result: dict[str, dict[str, float]] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The IMAP relay's Python work per round trip.")
    parser.add_argument("--count", type=int, default=200, help="round trips per op (200)")
    parser.add_argument("--against", help="also count the commsproxy of this commit")
    parser.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)
    parser.add_argument("--json-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.json_only:
        sys.path.insert(0, str(args.root))
        print(json.dumps(measure(args.count)))
        return 0
    results = {"this tree": _run_in(REPO, args.count)}
    if args.against:
        with source_of(args.against) as root:
            results[args.against] = _run_in(root, args.count)
    print(f"{'path':20} {'build':12} {'calls':>7} {'opcodes':>8} {'us (noisy)':>11}")
    for key in results["this tree"]:
        for build, result in results.items():
            row = result[key]
            print(
                f"{key:20} {build:12} {row['calls']:7.1f} {row['opcodes']:8.0f} {row['us']:11.2f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
