"""Round trips through the IMAP relay: NOOP, SELECT INBOX and IDLE, wall clock and relay CPU.

A mail client's clicks are small round trips, and what the proxy adds to each is mostly its
own Python work per command and per response. This benchmark measures that work directly: the
CPU time the relay process spends per round trip (all threads, from /proc: it hardly depends
on what else runs on the machine), beside the median wall-clock round trip, for the raw asyncio
relay (benchlib.py, the yardstick), commsproxy without triage and commsproxy with triage. With
``--against REV`` the two commsproxy paths of another commit run too, side by side in the same
rounds, so that a change is judged against its build before under the same load.

One private Dovecot (tests/testbed), one INBOX of generated messages (mailbox_size.py's, already
triaged). Every round runs each path back to back in rotating order: ``--count`` NOOPs with
INBOX selected, ``--count`` SELECT INBOX, ``--count`` IDLE round trips (IDLE, wait for "+",
DONE, wait for the tagged OK), one in flight at a time. Reported: medians over the rounds and
the median of the per-round ratios to the raw relay.

    python benchmarks/round_trips.py [--rounds 9] [--count 500] [--messages 1000]
                                     [--against REV] [--json FILE]

Run it alone on the machine (``flock /tmp/bench.lock`` where several share it). The exit status
is 0, or 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    Server,
    cpu_of,
    environment,
    fill_inbox,
    free_port,
    source_of,
    start_raw_relay,
)
from mailbox_size import (
    ALREADY_TRIAGED,
    SizeClient,
    generated_message,
    last_uid,
    wait_caught_up,
)

DEFAULT_JSON = REPO / "benchmarks" / "results" / "round_trips.json"
OPS = ("NOOP", "SELECT", "IDLE")
RAW = "raw relay"
# Runs ``python -m commsproxy`` from the given source tree (this one or an older commit's).
_RUN_FROM = (
    "import runpy, sys; sys.path.insert(0, {root!r}); "
    "runpy.run_module('commsproxy', run_name='__main__')"
)


def proxy(root: Path, name: str, config: Path, triage: bool) -> Server:
    """commsproxy from the source tree ``root`` on a port of its own, triage on or off."""
    port = free_port()
    text = config.read_text(encoding="utf-8").replace(
        'imap = "127.0.0.1:0"', f'imap = "127.0.0.1:{port}"'
    )
    if not triage:
        text = text.replace("[triage]\n", "[triage]\nenabled = false\n", 1)
    config.write_text(text, encoding="utf-8")
    argv = [sys.executable, "-c", _RUN_FROM.format(root=str(root)), "run", "--config", str(config)]
    env = {**os.environ, "XDG_CONFIG_HOME": "/nonexistent"}
    env.pop("COMMSPROXY_CONFIG", None)
    return Server(name, argv, port, env)


def one(client: SizeClient, op: str) -> float:
    if op == "NOOP":
        return client.noops(1)[0]
    if op == "SELECT":
        return client.timed("SELECT INBOX")[0]
    return client.idle_round_trip()


def measure(
    clients: dict[str, SizeClient], pids: dict[str, int], rounds: int, count: int
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """Per path and op: the median round trip and the relay's CPU per round trip, per round."""
    names = list(clients)
    out: dict[str, dict[str, dict[str, list[float]]]] = {
        n: {op: {"wall": [], "cpu": []} for op in OPS} for n in names
    }
    for i in range(rounds + 1):  # round 0 warms up, untimed
        shift = i % len(names)
        for op in OPS:
            for name in names[shift:] + names[:shift]:
                client, pid = clients[name], pids[name]
                before = cpu_of(pid).total
                times = [one(client, op) for _ in range(count)]
                cpu = (cpu_of(pid).total - before) / count
                if i:
                    out[name][op]["wall"].append(statistics.median(times))
                    out[name][op]["cpu"].append(cpu)
    return out


def table(result: dict[str, dict[str, dict[str, list[float]]]]) -> list[str]:
    def ratio(name: str, op: str, what: str) -> float:
        pairs = zip(result[name][op][what], result[RAW][op][what], strict=True)
        return statistics.median(a / b for a, b in pairs)

    head = f"{'path':28}" + "".join(f" | {op + ' us (x raw), CPU us (x raw)':38}" for op in OPS)
    lines = [head, "-" * len(head)]
    for name in result:
        cells = []
        for op in OPS:
            wall = statistics.median(result[name][op]["wall"]) * 1e6
            cpu = statistics.median(result[name][op]["cpu"]) * 1e6
            text = (
                f"{wall:6.0f} ({ratio(name, op, 'wall'):4.2f}x), "
                f"{cpu:5.0f} ({ratio(name, op, 'cpu'):4.2f}x)"
            )
            cells.append(f" | {text:38}")
        lines.append(f"{name:28}" + "".join(cells))
    return lines


def run(args: argparse.Namespace) -> dict[str, Any]:
    from tests.testbed.dovecot import Dovecot
    from tests.testbed.triage import quiet_batches, write_triage_config

    report: dict[str, Any] = {"environment": environment(), "plan": vars(args) | {"json": None}}
    servers: list[Server] = []
    clients: dict[str, SizeClient] = {}
    with Dovecot() as dovecot, contextlib.ExitStack() as stack:
        user, password = dovecot.new_user()
        messages = [generated_message(i, "trips") for i in range(args.messages)]
        fill_inbox(dovecot, user, messages, keywords=ALREADY_TRIAGED)
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="round-trips-")))
        builds = {"": REPO}
        if args.against:
            builds[f" ({args.against})"] = stack.enter_context(source_of(args.against))
        try:
            servers.append(start_raw_relay(dovecot.imap_port))
            triaged: list[Path] = []
            for label, root in builds.items():
                for triage in (False, True):
                    name = ("commsproxy+triage" if triage else "commsproxy") + label
                    directory = work / name.replace(" ", "_")
                    config = write_triage_config(
                        dovecot, user, password, directory, batches=quiet_batches()
                    )
                    servers.append(proxy(root, name, config, triage))
                    if triage:
                        triaged.append(directory / "state")
            probe = SizeClient(dovecot.imap_port, user, password)
            top = last_uid(probe)
            probe.close()
            for state in triaged:
                wait_caught_up(state, user, top, timeout=120)
            pids = {}
            for server in servers:
                clients[server.name] = SizeClient(server.port, user, password)
                pids[server.name] = server.pid
            began = time.perf_counter()
            result = measure(clients, pids, args.rounds, args.count)
            report["seconds"] = time.perf_counter() - began
        finally:
            for client in clients.values():
                client.close()
            for server in servers:
                server.stop()
    report["result"] = result
    report["table"] = table(result)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="NOOP, SELECT and IDLE round trips: the raw relay, commsproxy, with triage."
    )
    parser.add_argument("--rounds", type=int, default=9, help="rounds (default 9)")
    parser.add_argument("--count", type=int, default=500, help="round trips per sample")
    parser.add_argument("--messages", type=int, default=1000, help="messages in the INBOX")
    parser.add_argument("--against", help="also run commsproxy of this commit, side by side")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from tests.testbed.dovecot import DovecotError

    try:
        report = run(args)
    except (DovecotError, RuntimeError, OSError, subprocess.CalledProcessError) as err:
        print(f"round_trips: could not run: {err}", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    print(
        f"commsproxy {report['environment']['commsproxy_commit']}, "
        f"{report['environment']['cpus']} CPUs, 1-min load average "
        f"{report['environment']['load_average_at_start'][0]:.2f} at start, {load:.2f} after; "
        f"{args.messages} messages, {args.rounds} rounds of {args.count}"
    )
    print("\n".join(report["table"]))
    print("medians over the rounds; (x raw) = median of the per-round ratios to the raw relay")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
