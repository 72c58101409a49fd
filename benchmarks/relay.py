"""Relay benchmark: what commsproxy costs compared with talking to the server directly.

The proxy sits in every IMAP byte a mail client sends or receives, so its price is paid on two
things a user notices: how fast a big download goes (a first sync, a search that fetches whole
messages) and how long each small round trip takes (every click is a few of them). A Python
relay can never beat the wire, so the fair yardstick is not Dovecot alone but the tightest relay
Python's asyncio allows: a byte-for-byte copy loop with nothing else in it. commsproxy frames and
partly parses everything it forwards; this benchmark shows what that costs on top.

One run, one private Dovecot (tests/testbed), one INBOX of real mail (the public SpamAssassin
corpus in /work/shared/data/spamassassin, read straight from its tarball and written as maildir
files; the data is never copied into the repository), three paths side by side:

    direct      client -> Dovecot
    raw relay   client -> minimal asyncio copy loop (own process) -> Dovecot
    commsproxy  client -> ``python -m commsproxy run -q`` (plain upstream) -> Dovecot

Measured in rounds (default 7): every round runs each path back to back, the order rotating
from round to round, so that drift of the machine and other work on it hit every path alike;
ratios to the raw relay are taken within a round and their median is reported.

* bulk ``UID FETCH 1:* (BODY.PEEK[])`` on the whole INBOX: MB/s (10^6 bytes of IMAP response
  read off the socket) and messages/s. A sample repeats the fetch until it lasts about
  ``--min-sample`` seconds, so that it is more than scheduler noise. Every response is checked
  off the clock: one literal per message, the literals add up to the messages' RFC822.SIZE,
  and everything before the tagged reply is byte-identical on all three paths.
* round trip of ``NOOP`` (default 2000 per sample, one in flight at a time, INBOX selected, as
  a polling client sends them): total seconds and microseconds per NOOP, plus the median
  single round trip, which shrugs off the occasional scheduling hiccup.
* the CPU time each relay process spends per MB fetched and per NOOP (all threads, from
  /proc), which depends far less on how busy the machine is: where wall-clock ratios are noisy,
  this says what each relay itself costs.
* a command sent in two writes (``--splits``, default 200 per sample): a client that leaves
  Nagle on (no TCP_NODELAY) and writes ``UID SEARCH`` and its arguments separately, as
  IMAPClient's search and imaplib's APPEND do. Its second write waits for the ACK of the
  first, so a relay that delays its ACKs adds ~40 ms to every such command. Median round trip
  per sample, and its median ratio to direct over the rounds.
* memory: N idle logged-in connections (default 500, spread over users because the test bed
  lets one user+IP hold 100) through a fresh commsproxy process; VmRSS before and with the
  connections. The same through the raw relay, for scale.

Targets: commsproxy throughput >= 0.9x the raw relay, NOOP round trip <= 1.3x the raw relay,
a command in two writes costing <= 1.2x what the split costs direct (two writes / one
write on each path: a hop adds a round trip to every command, split or not), 500 idle
connections < 150 MB RSS. Printed: a table, PASS/MISS per target; written: a JSON file with
every sample (``--json``, default benchmarks/results/relay.json, git-ignored).
``--profile`` also records commsproxy with py-spy (``pip install py-spy``) during extra
fetches and NOOPs and prints the functions that take its time.

    python benchmarks/relay.py [--messages 3000] [--noops 2000] [--splits 200] [--idle 500]
                               [--runs 7] [--json FILE] [--profile]

The exit status is 0 when every target is met, 1 when one is missed, 2 when the benchmark
could not run (no corpus, no Dovecot).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# Shared with mailbox_size.py; cpu_of, environment, fill_inbox and load_corpus are also
# imported from here by triage.py.
from benchlib import (
    CORPUS,
    REPO,
    Client,
    Cpu,
    Server,
    check_fetch,
    cpu_of,
    dovecot_limits,
    environment,
    fill_inbox,
    load_corpus,
    measure_idle,
    raise_nofile,
    raw_relay_main,
    rss_kb,
    start_commsproxy,
    start_raw_relay,
)

__all__ = ["cpu_of", "environment", "fill_inbox", "load_corpus", "top_functions"]

DEFAULT_JSON = REPO / "benchmarks" / "results" / "relay.json"
PER_USER = 50  # idle connections per user: the test bed allows 100 per user+IP

TARGET_THROUGHPUT = 0.9  # commsproxy MB/s >= this x raw relay
TARGET_NOOP = 1.3  # commsproxy NOOP round trip <= this x raw relay
TARGET_IDLE_MB = 150.0  # RSS with the idle connections open
TARGET_SPLIT = 1.2  # the cost of writing a command in two pieces, through commsproxy vs direct

PATHS = ("direct", "raw relay", "commsproxy")


class SplitClient(Client):
    """A client that writes one command in two pieces with Nagle on, as IMAPClient does."""

    def __init__(self, port: int, user: str, password: str) -> None:
        super().__init__(port, user, password)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)

    def split_commands(self, count: int, *, split: bool = True) -> list[float]:
        """``count`` small ``UID SEARCH`` commands, each in two writes (or one): seconds each."""
        each: list[float] = []
        clock = time.perf_counter
        for _ in range(count):
            tag = self._tag()
            start = clock()
            if split:
                self.sock.sendall(tag + b" UID SEARCH")
                self.sock.sendall(b" UID 1:10\r\n")
            else:
                self.sock.sendall(tag + b" UID SEARCH UID 1:10\r\n")
            reply = self._read_tagged(tag)
            each.append(clock() - start)
            start_of_last = reply.rfind(b"\n", 0, len(reply) - 1) + 1
            if not reply.startswith(tag + b" OK", start_of_last):
                raise RuntimeError(f"split SEARCH answered {reply[-200:]!r}")
        return each


def measure_splits(
    ports: dict[str, int],
    user: str,
    password: str,
    count: int,
    runs: int,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Round trips of commands in two writes per path, in rotating rounds; ratios to direct."""
    clients = {name: SplitClient(port, user, password) for name, port in ports.items()}
    try:
        for client in clients.values():
            client.split_commands(min(20, count))  # warm
        medians: dict[str, list[float]] = {name: [] for name in ports}
        whole: dict[str, list[float]] = {name: [] for name in ports}  # the same in one write
        for i, order in rotations(runs):
            for name in order:
                medians[name].append(statistics.median(clients[name].split_commands(count)))
                once = clients[name].split_commands(count, split=False)
                whole[name].append(statistics.median(once))
            say(
                f"  split round {i + 1}/{runs}: "
                + ", ".join(f"{n} {medians[n][-1] * 1e3:.2f} ms" for n in ports)
            )
    finally:
        for client in clients.values():
            client.close()
    direct = medians["direct"]
    return {
        name: {
            "ms_median": statistics.median(ms) * 1e3,
            "ms_per_round": [round(m * 1e3, 3) for m in ms],
            "ratio_vs_direct": statistics.median(m / d for m, d in zip(ms, direct, strict=True)),
            "one_write_ms_median": statistics.median(whole[name]) * 1e3,
            # What splitting costs on this path: about 1x unless ACKs are delayed.
            "ratio_vs_one_write": statistics.median(
                m / w for m, w in zip(ms, whole[name], strict=True)
            ),
        }
        for name, ms in medians.items()
    }


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Round:
    """One path in one round: a fetch sample and a NOOP sample."""

    fetch_seconds: float
    fetch_bytes: int  # response bytes read, all fetches of the sample
    fetch_messages: int
    noop_seconds: float
    noop_p50: float  # median single round trip, s
    noop_p99: float
    fetch_cpu: Cpu | None = None  # what the relay process spent on the sample
    noop_cpu: Cpu | None = None


@dataclass
class Setup:
    ports: dict[str, int]
    pids: dict[str, int]  # relay processes (not Dovecot)
    user: str
    password: str
    messages: int
    noops: int
    runs: int


def rotations(rounds: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    """Every round runs all paths back to back; the order rotates so none is always first."""
    for i in range(rounds):
        shift = i % len(PATHS)
        yield i, PATHS[shift:] + PATHS[:shift]


class Bench:
    """The three clients, the expected response, and the checks every fetch must pass."""

    def __init__(self, setup: Setup, say: Callable[[str], None]) -> None:
        self.setup = setup
        self.say = say
        self.clients = {
            name: Client(port, setup.user, setup.password) for name, port in setup.ports.items()
        }
        # Dovecot sends maildir's LF line ends as CRLF: the literals add up to RFC822.SIZE.
        sizes = self.clients["direct"].command("UID FETCH 1:* (RFC822.SIZE)")
        self.literal_total = sum(int(n) for n in re.findall(rb"RFC822\.SIZE (\d+)", sizes))
        self.expected = self.literal_total * 2  # a generous first guess at the response size
        self.response_bytes = 0
        self.digest: str | None = None
        self.repeat = 1

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def warm_up(self, min_sample: float) -> None:
        """Untimed: Dovecot's cache, the page cache and each relay's code paths get warm."""
        slowest = 0.0
        for name in PATHS:
            seconds, response = self.clients[name].fetch_all(self.expected)
            self._check(name, response)
            self.response_bytes = len(response)
            self.expected = max(self.expected, len(response))
            seconds, _ = self.clients[name].fetch_all(self.expected)
            slowest = max(slowest, seconds)
            self.clients[name].noops(min(300, self.setup.noops))
        # One sample fetches the INBOX this many times, so that it lasts long enough to be
        # more than scheduler noise.
        self.repeat = max(1, round(min_sample / max(slowest, 1e-3)))

    def _check(self, name: str, response: bytes) -> None:
        check = check_fetch(response)
        if check.messages != self.setup.messages or check.literal_bytes != self.literal_total:
            raise RuntimeError(
                f"{name}: FETCH returned {check.messages} messages / {check.literal_bytes} "
                f"literal bytes, expected {self.setup.messages} / {self.literal_total}"
            )
        if self.digest is None:
            self.digest = check.digest
        elif check.digest != self.digest:
            raise RuntimeError(f"{name}: FETCH bytes differ from the other paths")

    def sample(self, name: str) -> Round:
        client = self.clients[name]
        pid = self.setup.pids.get(name)
        cpu0 = cpu_of(pid) if pid else Cpu()
        fetch_seconds = 0.0
        fetch_bytes = 0
        for _ in range(self.repeat):
            seconds, response = client.fetch_all(self.expected)
            fetch_seconds += seconds
            fetch_bytes += len(response)
            self._check(name, response)  # off the clock; the relay is idle meanwhile
        cpu1 = cpu_of(pid) if pid else Cpu()
        noop_seconds, each = client.noops(self.setup.noops)
        cpu2 = cpu_of(pid) if pid else Cpu()
        each.sort()
        return Round(
            fetch_seconds=fetch_seconds,
            fetch_bytes=fetch_bytes,
            fetch_messages=self.repeat * self.setup.messages,
            noop_seconds=noop_seconds,
            noop_p50=statistics.median(each),
            noop_p99=each[min(len(each) - 1, int(len(each) * 0.99))],
            fetch_cpu=cpu1 - cpu0 if pid else None,
            noop_cpu=cpu2 - cpu1 if pid else None,
        )

    def run(self) -> dict[str, list[Round]]:
        rounds: dict[str, list[Round]] = {name: [] for name in PATHS}
        noops = self.setup.noops
        for i, order in rotations(self.setup.runs):
            for name in order:
                rounds[name].append(self.sample(name))
            self.say(
                f"  round {i + 1}/{self.setup.runs}: "
                + ", ".join(
                    f"{n} {r.fetch_bytes / r.fetch_seconds / 1e6:.0f} MB/s "
                    f"{r.noop_seconds / noops * 1e6:.0f} us"
                    for n in PATHS
                    for r in rounds[n][-1:]
                )
            )
        return rounds


# -- profiling (--profile) --------------------------------------------------------------------


def top_functions(raw_file: Path, limit: int) -> tuple[int, list[tuple[str, float, float]]]:
    """From py-spy's raw (collapsed) stacks: busy samples, and the functions that take the most
    of them as (name, self %, inclusive %). Samples waiting in select() count as idle."""
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    busy = 0
    for line in raw_file.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        names = [_frame_name(frame) for frame in stack.split(";")]
        if names[-1].startswith("EpollSelector.select"):
            continue
        count = int(count_text)
        busy += count
        own[names[-1]] = own.get(names[-1], 0) + count
        for name in set(names):
            incl[name] = incl.get(name, 0) + count
    ranked = sorted(own.items(), key=lambda item: -item[1])[:limit]
    total = max(busy, 1)
    return busy, [(n, 100 * c / total, 100 * incl[n] / total) for n, c in ranked]


def _frame_name(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py)``."""
    func, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{func} ({file})" if file else func


def profile_commsproxy(
    bench: Bench, pid: int, out_dir: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Record commsproxy with py-spy while it relays fetches, then NOOPs; print the top."""
    # On PATH, or installed beside this Python (a virtualenv that is not activated).
    pyspy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if pyspy is None:
        say("--profile: py-spy not found (pip install py-spy); skipped")
        return {"error": "py-spy not found"}
    client = bench.clients["commsproxy"]
    found: dict[str, Any] = {}

    def fetches() -> None:
        for _ in range(3 * bench.repeat):
            client.fetch_all(bench.expected)

    def noops() -> None:
        client.noops(3 * bench.setup.noops)

    phases: dict[str, Callable[[], None]] = {"fetch": fetches, "noop": noops}
    out_dir.mkdir(parents=True, exist_ok=True)
    for phase, work in phases.items():
        out = out_dir / f"profile-commsproxy-{phase}.txt"
        out.unlink(missing_ok=True)
        argv = [pyspy, "record", "--nonblocking", "--rate", "1000", "--format", "raw"]
        with tempfile.TemporaryFile() as errors:
            spy = subprocess.Popen(
                [*argv, "--output", str(out), "--pid", str(pid)],
                stdout=subprocess.DEVNULL,
                stderr=errors,
            )
            time.sleep(1.0)  # py-spy attaches
            work()
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            errors.seek(0)
            why = errors.read().decode(errors="replace").strip().splitlines()[-1:]
        if not out.exists():
            say(f"--profile: py-spy recorded nothing for {phase}: {why}")
            continue
        busy, top = top_functions(out, 15)
        found[phase] = {
            "file": str(out),
            "busy_samples": busy,
            "top_self": [{"function": n, "self_pct": s, "incl_pct": i} for n, s, i in top],
        }
        say(f"profile of commsproxy, {phase} ({busy} busy samples; self %, inclusive %):")
        for name, own, inclusive in top:
            say(f"  {own:5.1f}%  {inclusive:5.1f}%  {name}")
    return found


# -- reporting --------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def summarize(rounds: dict[str, list[Round]], noops: int) -> dict[str, Any]:
    """Medians and bests per path; ratios are medians of the per-round ratios to the raw
    relay (paired within a round, so slow drift of the machine cancels out)."""
    raw = rounds["raw relay"]
    summary: dict[str, Any] = {}
    for name, rs in rounds.items():
        mbps = [r.fetch_bytes / r.fetch_seconds / 1e6 for r in rs]
        noop_us = [r.noop_seconds / noops * 1e6 for r in rs]
        row: dict[str, Any] = {
            "fetch_mb_per_s": [round(x, 1) for x in mbps],
            "fetch_mb_per_s_median": statistics.median(mbps),
            "fetch_mb_per_s_best": max(mbps),
            "fetch_msgs_per_s_median": statistics.median(
                r.fetch_messages / r.fetch_seconds for r in rs
            ),
            "fetch_ratio_vs_raw": statistics.median(
                (r.fetch_bytes / r.fetch_seconds) / (q.fetch_bytes / q.fetch_seconds)
                for r, q in zip(rs, raw, strict=True)
            ),
            "noop_total_seconds": [round(r.noop_seconds, 4) for r in rs],
            "noop_us_median": statistics.median(noop_us),
            "noop_us_best": min(noop_us),
            "noop_p50_us_median": statistics.median(r.noop_p50 * 1e6 for r in rs),
            "noop_p99_us_median": statistics.median(r.noop_p99 * 1e6 for r in rs),
            "noop_ratio_vs_raw": statistics.median(
                r.noop_seconds / q.noop_seconds for r, q in zip(rs, raw, strict=True)
            ),
            "noop_p50_ratio_vs_raw": statistics.median(
                r.noop_p50 / q.noop_p50 for r, q in zip(rs, raw, strict=True)
            ),
        }
        fetch_cpu = [r.fetch_cpu for r in rs if r.fetch_cpu is not None]
        noop_cpu = [r.noop_cpu for r in rs if r.noop_cpu is not None]
        if fetch_cpu and noop_cpu:
            mb = [r.fetch_bytes / 1e6 for r in rs]
            row["cpu_ms_per_mb_median"] = statistics.median(
                c.total * 1e3 / m for c, m in zip(fetch_cpu, mb, strict=True)
            )
            row["cpu_us_per_noop_median"] = statistics.median(
                c.total * 1e6 / noops for c in noop_cpu
            )
            fetch_sum, noop_sum = sum(fetch_cpu, Cpu()), sum(noop_cpu, Cpu())
            row["cpu_user_ms_per_mb"] = fetch_sum.user * 1e3 / sum(mb)
            row["cpu_system_ms_per_mb"] = fetch_sum.system * 1e3 / sum(mb)
            row["cpu_user_us_per_noop"] = noop_sum.user * 1e6 / (noops * len(rs))
            row["cpu_system_us_per_noop"] = noop_sum.system * 1e6 / (noops * len(rs))
        summary[name] = row
    return summary


def table(summary: dict[str, Any]) -> list[str]:
    head = (
        f"{'path':<10} | {'fetch MB/s':>10} | {'best':>5} | {'msgs/s':>6} | {'vs raw':>6} | "
        f"{'NOOP us':>7} | {'best':>5} | {'p50':>5} | {'vs raw':>6} | "
        f"{'CPU ms/MB':>9} | {'CPU us/NOOP':>11}"
    )
    lines = [head, "-" * len(head)]
    for name, row in summary.items():
        cpu_mb = row.get("cpu_ms_per_mb_median")
        cpu_noop = row.get("cpu_us_per_noop_median")
        lines.append(
            f"{name:<10} | {row['fetch_mb_per_s_median']:>10.1f} | "
            f"{row['fetch_mb_per_s_best']:>5.0f} | {row['fetch_msgs_per_s_median']:>6.0f} | "
            f"{row['fetch_ratio_vs_raw']:>5.2f}x | {row['noop_us_median']:>7.1f} | "
            f"{row['noop_us_best']:>5.0f} | {row['noop_p50_us_median']:>5.0f} | "
            f"{row['noop_ratio_vs_raw']:>5.2f}x | "
            + (f"{cpu_mb:>9.2f}" if cpu_mb is not None else f"{'-':>9}")
            + " | "
            + (f"{cpu_noop:>11.1f}" if cpu_noop is not None else f"{'-':>11}")
        )
    lines.append(
        "medians over the rounds; 'vs raw' = median of the per-round ratios to the raw relay;"
    )
    lines.append("NOOP us = total / count (one in flight); CPU = the relay process's own CPU time")
    for name, row in summary.items():
        if "cpu_user_ms_per_mb" in row:
            lines.append(
                f"  {name} CPU, user + system: fetch {row['cpu_user_ms_per_mb']:.2f} + "
                f"{row['cpu_system_ms_per_mb']:.2f} ms/MB, NOOP "
                f"{row['cpu_user_us_per_noop']:.0f} + {row['cpu_system_us_per_noop']:.0f} us"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Relay benchmark: direct vs raw asyncio relay vs commsproxy."
    )
    parser.add_argument("--messages", type=int, default=3000, help="messages in the INBOX")
    parser.add_argument("--noops", type=int, default=2000, help="sequential NOOPs per sample")
    parser.add_argument(
        "--splits", type=int, default=200, help="commands in two writes per sample (0: skip)"
    )
    parser.add_argument("--idle", type=int, default=500, help="idle connections (0: skip)")
    parser.add_argument("--runs", type=int, default=7, help="rounds (samples per path)")
    parser.add_argument(
        "--min-sample", type=float, default=0.4, help="seconds a fetch sample lasts at least"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--profile", action="store_true", help="also record commsproxy with py-spy")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus tarball")
    parser.add_argument("--raw-relay", type=int, metavar="UPSTREAM_PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.raw_relay is not None:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(raw_relay_main(args.raw_relay))
        return 0

    if not args.corpus.is_file():
        print(
            f"relay benchmark: the mail corpus {args.corpus} is missing.\n"
            "The benchmark needs real messages (the SpamAssassin public corpus, see "
            "PROVENANCE.md beside it); the tests do not. Put the tarball there or pass --corpus.",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(REPO))
    from tests.testbed.dovecot import DovecotError

    try:
        report, lines, verdicts = run_benchmark(args, print_now)
    except DovecotError as err:
        print(f"relay benchmark: the test Dovecot failed: {err}", file=sys.stderr)
        return 2
    except RuntimeError as err:
        print(f"relay benchmark: {err}", file=sys.stderr)
        return 2
    print()
    print("\n".join(lines))
    for text, ok in verdicts:
        print(f"{_verdict(ok)}  {text}")
    print(f"({report['elapsed_seconds']} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0 if all(ok for _, ok in verdicts) else 1


def print_now(text: str) -> None:
    print(text, flush=True)


def run_benchmark(
    args: argparse.Namespace, say: Callable[[str], None]
) -> tuple[dict[str, Any], list[str], list[tuple[str, bool]]]:
    from tests.testbed.dovecot import Dovecot

    began = time.perf_counter()
    nofile = raise_nofile(4 * args.idle + 256)
    say(f"loading {args.messages} messages from {args.corpus} ...")
    corpus = load_corpus(args.corpus, args.messages)
    report: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items() if k not in ("raw_relay", "json")},
        "environment": environment() | {"nofile_limit": list(nofile)},
        "corpus": {
            "file": str(args.corpus),
            "messages": len(corpus),
            "file_bytes": sum(map(len, corpus)),
        },
    }
    report["settings"]["corpus"] = str(args.corpus)
    lines: list[str] = []
    verdicts: list[tuple[str, bool]] = []
    servers: list[Server] = []
    try:
        with Dovecot() as dovecot, tempfile.TemporaryDirectory() as tmp:
            config_home = Path(tmp)
            version = subprocess.run(
                [dovecot.dovecot_bin, "--version"], capture_output=True, text=True, check=False
            )
            report["environment"]["dovecot"] = version.stdout.strip()
            report["dovecot_limits"] = dovecot_limits(dovecot)
            user, password = dovecot.new_user()
            t0 = time.perf_counter()
            fill_inbox(dovecot, user, corpus)
            say(
                f"INBOX of {user}: {len(corpus)} messages, "
                f"{report['corpus']['file_bytes'] / 1e6:.1f} MB "
                f"(loaded in {time.perf_counter() - t0:.1f} s)"
            )

            raw = start_raw_relay(dovecot.imap_port)
            servers.append(raw)
            proxy = start_commsproxy(dovecot.imap_port, config_home)
            servers.append(proxy)
            setup = Setup(
                ports={
                    "direct": dovecot.imap_port,
                    "raw relay": raw.port,
                    "commsproxy": proxy.port,
                },
                pids={"raw relay": raw.pid, "commsproxy": proxy.pid},
                user=user,
                password=password,
                messages=len(corpus),
                noops=args.noops,
                runs=args.runs,
            )
            bench = Bench(setup, say)
            try:
                bench.warm_up(args.min_sample)
                report["corpus"]["literal_bytes"] = bench.literal_total
                report["corpus"]["fetch_response_bytes"] = bench.response_bytes
                report["fetches_per_sample"] = bench.repeat
                say(
                    f"{args.runs} rounds; each: {bench.repeat} x UID FETCH 1:* (BODY.PEEK[]) "
                    f"({bench.response_bytes / 1e6:.1f} MB) and {args.noops} NOOPs, per path"
                )
                rounds = bench.run()
                if args.profile:
                    report["profile"] = profile_commsproxy(bench, proxy.pid, args.json.parent, say)
            finally:
                bench.close()
            # Before the idle test, whose hundreds of Dovecot processes raise the load themselves.
            report["environment"]["load_average_after_rounds"] = os.getloadavg()
            report["rounds"] = {name: [asdict(r) for r in rs] for name, rs in rounds.items()}
            summary = summarize(rounds, args.noops)
            for server, name in ((raw, "raw relay"), (proxy, "commsproxy")):
                summary[name]["rss_after_fetches_mb"] = server.rss_kb() / 1024
                summary[name]["peak_rss_mb"] = rss_kb(server.pid, "VmHWM") / 1024
            report["paths"] = summary
            lines += table(summary)
            cp = summary["commsproxy"]
            verdicts.append(
                (
                    f"fetch throughput >= {TARGET_THROUGHPUT}x raw relay "
                    f"({cp['fetch_ratio_vs_raw']:.2f}x)",
                    cp["fetch_ratio_vs_raw"] >= TARGET_THROUGHPUT,
                )
            )
            verdicts.append(
                (
                    f"NOOP round trip <= {TARGET_NOOP}x raw relay ({cp['noop_ratio_vs_raw']:.2f}x)",
                    cp["noop_ratio_vs_raw"] <= TARGET_NOOP,
                )
            )
            if args.splits > 0:
                say(f"{args.runs} rounds of {args.splits} commands in two writes, per path")
                split = measure_splits(setup.ports, user, password, args.splits, args.runs, say)
                report["split_command"] = split
                lines.append("")
                lines.append(
                    "command in two writes (Nagle on), median round trip: "
                    + ", ".join(
                        f"{name} {row['ms_median']:.2f} ms ({row['ratio_vs_direct']:.2f}x direct)"
                        for name, row in split.items()
                    )
                )
                lines.append(
                    "  the same command in one write: "
                    + ", ".join(
                        f"{name} {row['one_write_ms_median']:.2f} ms "
                        f"(two writes cost {row['ratio_vs_one_write']:.2f}x)"
                        for name, row in split.items()
                    )
                )
                # A relay's hop costs a round trip on every command, split or not; what a delayed
                # ACK adds is the split's own cost (two writes over one write), so that is what is
                # held against direct.
                cost = split["commsproxy"]["ratio_vs_one_write"]
                direct_cost = split["direct"]["ratio_vs_one_write"]
                verdicts.append(
                    (
                        f"a command in two writes costs <= {TARGET_SPLIT}x what it costs direct"
                        f" (two writes / one write: commsproxy {cost:.2f}x, direct"
                        f" {direct_cost:.2f}x)",
                        cost <= TARGET_SPLIT * direct_cost,
                    )
                )
            for server in servers:
                server.stop()
            servers.clear()

            if args.idle > 0:
                lines.append("")
                idle: dict[str, Any] = {}
                users = -(-args.idle // PER_USER)
                for name in ("commsproxy", "raw relay"):
                    # Fresh users per relay: Dovecot may not have counted the last ones out yet.
                    accounts = [dovecot.new_user() for _ in range(users)]
                    logins = [accounts[i % users] for i in range(args.idle)]
                    fresh = (
                        start_commsproxy(dovecot.imap_port, config_home)
                        if name == "commsproxy"
                        else start_raw_relay(dovecot.imap_port)
                    )
                    servers.append(fresh)
                    say(f"{args.idle} idle logged-in connections through {name} ({users} users)")
                    idle[name] = measure_idle(fresh.port, fresh.pid, logins)
                    fresh.stop()
                    servers.remove(fresh)
                    warnings = [ln for ln in fresh.log_text().splitlines() if ln.strip()]
                    idle[name]["log_tail"] = warnings[-5:]
                report["idle"] = idle
                ci, ri = idle["commsproxy"], idle["raw relay"]
                lines.append(
                    f"idle: {ci['connections_logged_in']}/{args.idle} logged-in connections "
                    f"through commsproxy: RSS {ci['rss_before_mb']:.1f} MB before -> "
                    f"{ci['rss_with_connections_mb']:.1f} MB with them "
                    f"({ci['per_connection_kb']:.1f} kB each); raw relay "
                    f"{ri['rss_before_mb']:.1f} -> {ri['rss_with_connections_mb']:.1f} MB"
                )
                if ci["error_count"]:
                    lines.append(f"  {ci['error_count']} logins failed, e.g. {ci['errors'][:2]}")
                verdicts.append(
                    (
                        f"{args.idle} idle connections < {TARGET_IDLE_MB:.0f} MB RSS "
                        f"({ci['rss_with_connections_mb']:.1f} MB)",
                        ci["connections_logged_in"] == args.idle
                        and ci["rss_with_connections_mb"] < TARGET_IDLE_MB,
                    )
                )
    finally:
        for server in servers:
            server.stop()
    env = report["environment"]
    env["load_average_at_end"] = os.getloadavg()
    lines.insert(
        0,
        f"{env['cpus']} CPUs; 1-min load average {env['load_average_at_start'][0]:.2f} at start, "
        f"{env['load_average_after_rounds'][0]:.2f} after the rounds "
        "(a fetch keeps client, relay and Dovecot busy: 3 processes)",
    )
    report["targets"] = [{"target": text, "pass": ok} for text, ok in verdicts]
    report["elapsed_seconds"] = round(time.perf_counter() - began, 1)
    return report, lines, verdicts


if __name__ == "__main__":
    sys.exit(main())
