"""Mailbox-size benchmark: commsproxy's cost must not grow with the INBOX.

A relay's cost per command should be the same for an INBOX of a thousand messages and one of a
hundred thousand; so should what triage costs while no mail arrives. This benchmark measures,
side by side in one run against one private Dovecot (tests/testbed), for INBOXes of each size
in ``--sizes`` (default 1,000, 10,000 and 100,000 messages):

    direct             client -> Dovecot
    raw relay          client -> minimal asyncio copy loop (benchlib.py) -> Dovecot
    commsproxy         client -> ``commsproxy run`` with triage off -> Dovecot
    commsproxy+triage  client -> ``commsproxy run --config`` with triage on for the login
                       (VIP rule, the two default batches released 12 hours from now, the
                       bundled model, state in a temporary directory) -> Dovecot

The INBOX holds generated messages (about 700 bytes each: colleagues' notes and newsletters, a
unique Message-ID each), written straight into the maildir and indexed once by
``doveadm force-resync`` off the clock. They carry ``$Triaged $Urgent``, as mail triage decided
earlier and left in INBOX: the triaging proxy's first pass reads their flags and holds none of
them. Each size gets a fresh user and a fresh triaging proxy, started and caught up (its cursor
in the state store at the INBOX's last UID) before anything is measured.

Per size, in rounds that run every path back to back in rotating order (ratios to the raw relay
are taken within a round; the median over the rounds is reported):

* ``NOOP``, ``SELECT INBOX`` and IDLE (``IDLE``, its continuation, ``DONE``, the tagged OK),
  one in flight at a time, INBOX selected: median round trip per sample;
* ``FETCH 1:* (FLAGS)``: wall time of the whole response (every message's line checked);
* bulk ``UID FETCH 1:* (BODY.PEEK[])``: MB/s of IMAP response, checked as relay.py does.

Then, per size:

* idle CPU: a client IDLEs on INBOX through the proxy, no mail arrives, for ``--idle-seconds``:
  the proxy's CPU time and that of every Dovecot process (/proc), with triage off (the plain
  proxy, before the triaging one starts) and with triage on;
* the triaging proxy's RSS after that idle window;
* backlog: ``--backlog`` new messages (half newsletters, half colleagues' notes) appear in INBOX
  at once (written to the maildir's tmp/, then renamed into new/ in one burst) while the
  triaging proxy runs; a direct client polls until every one carries ``$Triaged`` (in INBOX or
  a hold mailbox) and until every held one has left INBOX: messages per second, until the last
  held one left INBOX (all tagged is reported too). A direct client IDLEing on INBOX says when
  the server announced the new mail: part of the time is the server's own delay in telling
  (Dovecot waits about half a second after a change before it notifies). Then, with the proxy
  stopped, the same number of new messages get the same commands from a plain direct client,
  as triage sends them: ``UID FETCH`` of the flags per group of 2,000, of what triage reads per
  step of 500, ``UID STORE +FLAGS.SILENT`` per label (half the messages each way) and one
  ``UID MOVE`` per hold mailbox per group. That is the server's own time for the work, so a
  rate below the target can be told apart from a server that is itself slower than the target.
  The target's "server alone" is that time plus the server's delay in announcing the mail
  (measured in the triage run): no client can start before it is told, and triage's time
  includes it. The commands' time alone is reported beside it, and, for comparison, the work
  in the older shape (one ``UID MOVE`` of 500 per step into one mailbox).

Finally ``--connections`` (default 2,000) idle logged-in connections through a fresh triaging
proxy and through the raw relay (this Dovecot allows that many per user+IP): RSS before and
with them, and the memory each connection costs on both.

Targets (commsproxy+triage): NOOP, SELECT and IDLE <= 1.3x the raw relay at every size; bulk
fetch >= 0.95x the raw relay's throughput; ``FETCH 1:* (FLAGS)`` <= 1.5x the raw relay's wall
time; backlog >= 1,500 messages/s, unless the server alone manages less than that (then >= 0.8x
the server's own rate, reported as limited by the server); idle CPU < 0.2% of a CPU for the
proxy and < 0.2% more for Dovecot than with triage off; RSS idle <= 100 MB; memory per idle
connection <= 1.3x the raw relay's. Printed: a table per size and PASS/MISS per target; written:
every sample to ``--json`` (default benchmarks/results/mailbox_size.json, git-ignored).

    python benchmarks/mailbox_size.py [--sizes 1000,10000,100000] [--rounds 3]
                                      [--backlog 2000] [--idle-seconds 10]
                                      [--connections 2000] [--quick] [--smoke] [--json FILE]

``--quick`` runs 1,000 and 10,000 with fewer samples; ``--smoke`` a tiny run that only proves
the benchmark works (its exit status ignores the targets). The exit status is 0 when every
target is met, 1 when one is missed (each named), 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchlib import (
    REPO,
    Client,
    Server,
    check_fetch,
    cpu_of,
    environment,
    fill_inbox,
    measure_idle,
    raise_nofile,
    rss_kb,
    start_commsproxy,
    start_raw_relay,
)

if TYPE_CHECKING:
    from tests.testbed.dovecot import Dovecot
    from tests.testbed.proxy import ProxyProcess

DEFAULT_JSON = REPO / "benchmarks" / "results" / "mailbox_size.json"
PATHS = ("direct", "raw relay", "commsproxy", "commsproxy+triage")
TRIAGE = "commsproxy+triage"
ALREADY_TRIAGED = ("$Triaged", "$Urgent")  # mail triage decided earlier and kept in INBOX
HOLD_MAILBOXES = ("Later", "Later/Bulk")
CHUNK = 500  # triage's messages per step (triage/new_mail.py _CHUNK), for the server's own time
GROUP = 2000  # messages per group of steps, one UID MOVE per hold mailbox (new_mail.py _GROUP)
MOVE_CHUNK = 2000  # UIDs per UID MOVE triage sends (triage/upstream.py _MOVE_CHUNK)
BODY_PREFIX = 64 << 10  # [triage] body_prefix's default: what triage fetches of a body
SERVER_TIME = re.compile(rb"\((\d+\.\d+)(?: \+ \d+\.\d+)* secs\)")
HELD_LOG = re.compile(r"held (\d+) message\(s\) in ")
# Seconds between the backlog probe's polls. Each poll's NOOP makes the probe's own session
# re-read the maildir after triage's changes: at 100,000 messages, polling every 20 ms cost
# Dovecot 2.3 s of its own (NOOP 5.6 ms each) while triaging 2,000 took 7.5 s of server time.
POLL = 0.1
MAX_USERIP = 5000  # connections per user+IP this benchmark's Dovecot allows
SHM = "/dev/shm" if Path("/dev/shm").is_dir() else None  # tmpfs for the maildirs, if there

TARGET_ROUND_TRIP = 1.3  # NOOP, SELECT, IDLE: commsproxy+triage / raw relay
TARGET_THROUGHPUT = 0.95  # bulk fetch MB/s: commsproxy+triage / raw relay
TARGET_FLAGS = 1.5  # FETCH 1:* (FLAGS) wall time: commsproxy+triage / raw relay
TARGET_BACKLOG = 1500.0  # messages triaged per second
TARGET_BACKLOG_OF_SERVER = 0.8  # ... or this share of the server's own rate when it is slower
TARGET_IDLE_CPU = 0.2  # % of one CPU, the proxy; and Dovecot's increase over triage off
TARGET_RSS_MB = 100.0  # the triaging proxy, idle
TARGET_CONN_MEMORY = 1.3  # memory per idle connection: commsproxy+triage / raw relay

Say = Callable[[str], None]


@dataclass(frozen=True)
class Plan:
    sizes: list[int]
    rounds: int
    noops: int  # per sample, at most (a sample also stops after ``sample_seconds``)
    selects: int
    idles: int
    flag_fetches: int
    sample_seconds: float
    min_fetch_seconds: float  # a bulk-fetch sample repeats the fetch until it lasts this long
    backlog: int
    idle_seconds: float
    connections: int
    smoke: bool = False


def plan_from(args: argparse.Namespace) -> Plan:
    if args.smoke:
        sizes, rounds, backlog, idle_s, conns = [200], 1, 50, 1.0, 20
        noops, selects, idles, flags, sample_s, fetch_s = 50, 5, 5, 1, 0.5, 0.05
    elif args.quick:
        sizes, rounds, backlog, idle_s, conns = [1000, 10000], 2, 1000, 5.0, 500
        noops, selects, idles, flags, sample_s, fetch_s = 300, 30, 30, 3, 1.0, 0.2
    else:
        sizes, rounds, backlog, idle_s, conns = [1000, 10000, 100000], 3, 2000, 10.0, 2000
        noops, selects, idles, flags, sample_s, fetch_s = 500, 50, 50, 5, 1.0, 0.3
    return Plan(
        sizes=args.sizes or sizes,
        rounds=args.rounds or rounds,
        noops=noops,
        selects=selects,
        idles=idles,
        flag_fetches=flags,
        sample_seconds=sample_s,
        min_fetch_seconds=fetch_s,
        backlog=args.backlog if args.backlog is not None else backlog,
        idle_seconds=args.idle_seconds if args.idle_seconds is not None else idle_s,
        connections=args.connections if args.connections is not None else conns,
        smoke=args.smoke,
    )


# -- mail ------------------------------------------------------------------------------------


def generated_message(i: int, tag: str) -> bytes:
    """A small message: a colleague's note (even i) or a newsletter (odd i)."""
    mid = f"<{tag}.{i}.{uuid.uuid4().hex[:12]}@bench.example>"
    date = f"Mon, 07 Dec 2026 {8 + i % 10:02d}:{i % 60:02d}:{i % 59:02d} +0000"
    if i % 2:
        head = (
            f"From: News {i % 7} <news{i % 7}@lists.example.org>\n"
            f"Subject: Weekly digest {i}\n"
            f"List-Id: <weekly{i % 7}.lists.example.org>\n"
            "List-Unsubscribe: <mailto:leave@lists.example.org>\n"
            "Precedence: bulk\n"
        )
        body = f"This week: articles, events and more articles to read ({i}).\n" * 6
    else:
        head = f"From: Colleague {i % 11} <colleague{i % 11}@corp.example>\nSubject: lunch {i}\n"
        body = f"Shall we have lunch some day next week? Option {i}, or the one after.\n" * 4
    return (
        f"{head}To: Me <me@corp.example>\nDate: {date}\nMessage-ID: {mid}\n"
        f"MIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}"
    ).encode()


def drop_new_mail(dovecot: Dovecot, user: str, messages: list[bytes]) -> float:
    """Put ``messages`` into INBOX at once, as a delivery agent does (tmp/, then a rename into
    new/), all renames in one burst; returns the clock when the burst began."""
    maildir = dovecot.home_dir / user / "Maildir"
    staged = []
    stamp = int(time.time())
    for i, message in enumerate(messages):
        name = f"{stamp}.N{i:06d}P{os.getpid()}R{uuid.uuid4().hex[:8]}.bench,S={len(message)}"
        path = maildir / "tmp" / name
        path.write_bytes(message)
        if not dovecot.identity.rootless:
            os.chown(path, dovecot.identity.uid, dovecot.identity.gid)
        staged.append((path, maildir / "new" / name))
    began = time.perf_counter()
    for src, dst in staged:
        os.rename(src, dst)
    return began


# -- the clients -----------------------------------------------------------------------------


class SizeClient(Client):
    """The lean client of benchlib with SELECT, IDLE and FETCH FLAGS round trips."""

    def timed(self, command: str) -> tuple[float, bytes]:
        start = time.perf_counter()
        response = self.command(command)
        return time.perf_counter() - start, response

    def idle_round_trip(self) -> float:
        """``IDLE``, wait for the continuation, ``DONE``, wait for the tagged OK."""
        tag = self._tag()
        start = time.perf_counter()
        self.sock.sendall(tag + b" IDLE\r\n")
        self._read_line_starting(b"+")
        self.sock.sendall(b"DONE\r\n")
        reply = self._read_line_starting(tag + b" ")
        elapsed = time.perf_counter() - start
        if not reply.rsplit(b"\r\n", 2)[-2].startswith(tag + b" OK"):
            raise RuntimeError(f"IDLE answered {reply[-200:]!r}")
        return elapsed

    def idle_start(self) -> bytes:
        tag = self._tag()
        self.sock.sendall(tag + b" IDLE\r\n")
        self._read_line_starting(b"+")
        return tag

    def idle_done(self, tag: bytes) -> None:
        self.sock.sendall(b"DONE\r\n")
        self._read_line_starting(tag + b" ")


def repeat(action: Callable[[], float], most: int, seconds: float, least: int = 5) -> list[float]:
    """``action`` up to ``most`` times or until ``seconds`` pass (at least ``least`` times)."""
    out: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(out) < most and (len(out) < least or time.perf_counter() < deadline):
        out.append(action())
    return out


@dataclass
class Sample:
    """One path in one round. Times in seconds."""

    noop: list[float]
    select: list[float]
    idle: list[float]
    flags: list[float]
    fetch_seconds: float
    fetch_bytes: int
    cpu: float | None  # the relay process's CPU seconds over the whole sample
    wall: float  # how long the whole sample took


def rotations(rounds: int) -> Iterator[tuple[int, tuple[str, ...]]]:
    for i in range(rounds):
        shift = i % len(PATHS)
        yield i, PATHS[shift:] + PATHS[:shift]


@dataclass
class SizeBench:
    size: int
    ports: dict[str, int]
    pids: dict[str, int]
    user: str
    password: str
    plan: Plan
    say: Say
    clients: dict[str, SizeClient] = field(default_factory=dict)
    expected: int = 0
    digest: str | None = None
    literal_total: int = 0
    fetch_repeat: int = 1
    server_select: dict[str, list[float]] = field(
        default_factory=lambda: {name: [] for name in PATHS}
    )  # Dovecot's own time for each SELECT, s

    def open(self) -> None:
        for name in PATHS:
            self.clients[name] = SizeClient(self.ports[name], self.user, self.password)
        # On a connection of its own: this session's SELECTs then cost 100x more (at 100,000
        # messages), as Dovecot seems to write the new cache field when the mailbox closes.
        probe = SizeClient(self.ports["direct"], self.user, self.password)
        try:
            sizes = probe.command("UID FETCH 1:* (RFC822.SIZE)")
        finally:
            probe.close()
        self.literal_total = sum(int(n) for n in re.findall(rb"RFC822\.SIZE (\d+)", sizes))
        self.expected = self.literal_total * 2 + (1 << 20)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()

    def _fetch(self, name: str) -> tuple[float, int]:
        seconds, response = self.clients[name].fetch_all(self.expected)
        check = check_fetch(response)
        if check.messages != self.size or check.literal_bytes != self.literal_total:
            raise RuntimeError(
                f"{name}: FETCH returned {check.messages} messages / {check.literal_bytes} "
                f"literal bytes, expected {self.size} / {self.literal_total}"
            )
        if self.digest is None:
            self.digest = check.digest
        elif check.digest != self.digest:
            raise RuntimeError(f"{name}: FETCH bytes differ from the other paths")
        self.expected = max(self.expected, len(response) + (1 << 20))
        return seconds, len(response)

    def _flags(self, name: str) -> float:
        seconds, response = self.clients[name].timed("FETCH 1:* (FLAGS)")
        lines = response.count(b" FETCH (")
        if lines != self.size:
            raise RuntimeError(f"{name}: FETCH 1:* (FLAGS) gave {lines} lines for {self.size}")
        return seconds

    def _select(self, name: str) -> float:
        seconds, response = self.clients[name].timed("SELECT INBOX")
        if b"* %d EXISTS" % self.size not in response:
            raise RuntimeError(f"{name}: SELECT INBOX did not say {self.size} EXISTS")
        # Dovecot says in its tagged OK how long the command ran: "(0.003 + 0.000 + 0.002 secs)".
        found = SERVER_TIME.search(response.rsplit(b"\r\n", 2)[-2])
        if found:
            self.server_select[name].append(float(found.group(1)))
        return seconds

    def warm_up(self) -> None:
        """Untimed: Dovecot's caches, the page cache and each relay's code paths get warm."""
        slowest = 0.0
        for name in PATHS:
            seconds = self._fetch(name)[0]
            if seconds < 1.0:  # a big INBOX's first fetch is warm-up and measure enough
                seconds = self._fetch(name)[0]
            slowest = max(slowest, seconds)
            self._flags(name)
            client = self.clients[name]
            client.noops(20)
            self._select(name)
            client.idle_round_trip()
        self.fetch_repeat = max(1, round(self.plan.min_fetch_seconds / max(slowest, 1e-3)))

    def sample(self, name: str) -> Sample:
        client = self.clients[name]
        pid = self.pids.get(name)
        cpu0 = cpu_of(pid) if pid else None
        began = time.perf_counter()
        plan = self.plan
        each = plan.sample_seconds
        noop = repeat(lambda: client.noops(1)[0], plan.noops, each)
        select = repeat(lambda: self._select(name), plan.selects, each)
        idle = repeat(client.idle_round_trip, plan.idles, each)
        flags = repeat(lambda: self._flags(name), plan.flag_fetches, each, least=1)
        fetch_seconds = 0.0
        fetch_bytes = 0
        for _ in range(self.fetch_repeat):
            seconds, size = self._fetch(name)
            fetch_seconds += seconds
            fetch_bytes += size
        cpu = (cpu_of(pid) - cpu0).total if pid and cpu0 is not None else None
        wall = time.perf_counter() - began
        return Sample(noop, select, idle, flags, fetch_seconds, fetch_bytes, cpu, wall)

    def run(self) -> dict[str, list[Sample]]:
        self.warm_up()
        samples: dict[str, list[Sample]] = {name: [] for name in PATHS}
        for i, order in rotations(self.plan.rounds):
            for name in order:
                samples[name].append(self.sample(name))
            self.say(
                f"  {self.size}: round {i + 1}/{self.plan.rounds}: "
                + ", ".join(
                    f"{n} NOOP {statistics.median(s.noop) * 1e6:.0f} us "
                    f"SELECT {statistics.median(s.select) * 1e3:.2f} ms"
                    for n in PATHS
                    for s in samples[n][-1:]
                )
            )
        return samples


# -- Dovecot and the processes under test ----------------------------------------------------


def roomy_config(base: str) -> str:
    """The test bed's config, with room for thousands of idle connections of one user."""
    return (
        base
        + f"""
# mailbox_size.py: thousands of idle connections of one user through one proxy address.
mail_max_userip_connections = {MAX_USERIP}
default_client_limit = {2 * MAX_USERIP}
service imap {{
  process_limit = {MAX_USERIP + 100}
}}
"""
    )


def dovecot_pids(dovecot: Dovecot) -> list[int]:
    """Every process of this Dovecot: the master's process group."""
    master = int((dovecot.root / "run" / "master.pid").read_text().split()[0])
    group = int(Path(f"/proc/{master}/stat").read_text().rpartition(")")[2].split()[2])
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            pids.append(int(entry.name))
    return pids


def imap(pid: int) -> bool:
    """Whether ``pid`` is a Dovecot imap session process (not imap-login or another service)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "imap"
    except OSError:
        return False


def cpu_of_all(pids: list[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            out[pid] = cpu_of(pid).total
        except (OSError, ValueError):
            continue
    return out


def dovecot_cpu_since(dovecot: Dovecot, before: dict[int, float]) -> float:
    after = cpu_of_all(dovecot_pids(dovecot))
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def idle_window(
    dovecot: Dovecot, port: int, pid: int, user: str, password: str, seconds: float
) -> dict[str, float]:
    """A client IDLEs on INBOX through the proxy at ``port``; nothing arrives. CPU % of one
    CPU spent by the proxy and by all of Dovecot over ``seconds``."""
    client = SizeClient(port, user, password)
    try:
        tag = client.idle_start()
        time.sleep(0.5)  # the IDLE's own start-up is not idle time
        proxy0 = cpu_of(pid)
        dove0 = cpu_of_all(dovecot_pids(dovecot))
        start = time.perf_counter()
        time.sleep(seconds)
        wall = time.perf_counter() - start
        proxy = (cpu_of(pid) - proxy0).total
        dove = dovecot_cpu_since(dovecot, dove0)
        client.idle_done(tag)
    finally:
        client.close()
    return {
        "seconds": wall,
        "proxy_cpu_seconds": proxy,
        "dovecot_cpu_seconds": dove,
        "proxy_cpu_pct": 100 * proxy / wall,
        "dovecot_cpu_pct": 100 * dove / wall,
    }


def start_triage_proxy(
    dovecot: Dovecot, user: str, password: str, directory: Path, connections: int
) -> ProxyProcess:
    from tests.testbed.triage import quiet_batches, triage_proxy, write_triage_config

    config = write_triage_config(dovecot, user, password, directory, batches=quiet_batches())
    # Room for the idle connections measured later (the default may be lower).
    text = config.read_text(encoding="utf-8")
    room = f"[proxy]\nmax_connections = {max(1000, connections + 100)}\n"
    config.write_text(text.replace("[proxy]\n", room, 1), encoding="utf-8")
    return triage_proxy(config)


def wait_caught_up(state_dir: Path, user: str, last_uid: int, timeout: float) -> float:
    """Until the triage cursor of ``user``'s INBOX reaches ``last_uid``; seconds waited."""
    from commsproxy.triage.state_store import FILENAME, StateStore

    start = time.perf_counter()
    deadline = start + timeout
    while time.perf_counter() < deadline:
        if (state_dir / FILENAME).exists():
            with StateStore.open(state_dir) as store:
                cursor = store.cursor(user, "INBOX")
            if cursor is not None and cursor[1] >= last_uid:
                return time.perf_counter() - start
        time.sleep(0.1)
    raise RuntimeError(f"triage did not catch up to uid {last_uid} within {timeout:.0f} s")


def log_clock(line: str) -> float:
    """The wall clock of a proxy log line ("2026-12-07 22:37:11,123 INFO ..."), local time."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def last_uid(client: Client) -> int:
    response = client.command("UID SEARCH ALL")
    uids = [int(u) for u in re.findall(rb"\d+", response.split(b"SEARCH", 1)[1].split(b"\r\n")[0])]
    return max(uids, default=0)


# -- backlog ---------------------------------------------------------------------------------


def search_uids(client: Client, criteria: str, above: int) -> list[int]:
    response = client.command(f"UID SEARCH {criteria}")
    line = (
        response.split(b"* SEARCH", 1)[1].split(b"\r\n", 1)[0] if b"* SEARCH" in response else b""
    )
    return [uid for uid in map(int, line.split()) if uid > above]


def held_count(client: Client) -> int:
    total = 0
    for mailbox in HOLD_MAILBOXES:
        try:
            response = client.command(f'STATUS "{mailbox}" (MESSAGES)')
        except RuntimeError:  # not there yet
            continue
        match = re.search(rb"MESSAGES (\d+)", response)
        total += int(match.group(1)) if match else 0
    return total


def backlog_through_triage(
    dovecot: Dovecot, proxy_pid: int, user: str, password: str, count: int, size: int, say: Say
) -> dict[str, Any]:
    """``count`` new messages at once while the triaging proxy runs; until all are triaged."""
    before_probe = set(dovecot_pids(dovecot))
    probe = SizeClient(dovecot.imap_port, user, password)
    # The probe's own imap process (one per connection): its CPU is not triage's.
    probe_pids = [pid for pid in dovecot_pids(dovecot) if pid not in before_probe and imap(pid)]
    announced = Announcement(dovecot.imap_port, user, password)
    try:
        base = last_uid(probe)
        held0 = held_count(probe)
        messages = [generated_message(i, f"backlog{size}") for i in range(count)]
        announced.start()
        proxy0 = cpu_of(proxy_pid)
        dove0 = cpu_of_all(dovecot_pids(dovecot))
        probe0 = cpu_of_all(probe_pids)
        began = drop_new_mail(dovecot, user, messages)
        wall_began = began + (time.time() - time.perf_counter())  # the proxy's log clock
        tagged_at = settled_at = None
        polls = 0
        deadline = began + max(60.0, count / 50)  # 50 msg/s: far below any target
        state: dict[str, int] = {}
        while time.perf_counter() < deadline:
            time.sleep(POLL)
            polls += 1
            held = held_count(probe) - held0  # before INBOX: a move in between is missed, not
            probe.command("NOOP")  # counted twice
            in_inbox = search_uids(probe, f"UID {base + 1}:*", base)
            untriaged = search_uids(probe, f"UID {base + 1}:* UNKEYWORD $Triaged", base)
            waiting = search_uids(
                probe,
                f"UID {base + 1}:* KEYWORD $Triaged UNKEYWORD $Urgent UNKEYWORD $NotHeld",
                base,
            )
            state = {
                "in_inbox": len(in_inbox),
                "held": held,
                "untriaged": len(untriaged),
                "waiting_to_move": len(waiting),
            }
            now = time.perf_counter()
            if tagged_at is None and not untriaged and len(in_inbox) + held >= count:
                tagged_at = now
            if tagged_at is not None and not waiting:
                settled_at = now
                break
        proxy_cpu = (cpu_of(proxy_pid) - proxy0).total
        probe_cpu = sum(cpu_of_all(probe_pids).values()) - sum(probe0.values())
        dove_cpu = dovecot_cpu_since(dovecot, dove0) - probe_cpu
    finally:
        probe.close()
        heard = announced.stop()
    ended = time.perf_counter()
    done = count - state.get("untriaged", count)
    timed_out = tagged_at is None or settled_at is None
    tagged_s = (tagged_at or ended) - began
    settled_s = (settled_at or ended) - began
    result = {
        "messages": count,
        "timed_out": timed_out,
        "state_at_end": state,
        "tagged_seconds": tagged_s,
        "settled_seconds": settled_s,
        # When it ran out of time: what was triaged by then, per second.
        "rate_tagged": (count if tagged_at else done) / tagged_s,
        "rate_settled": (count if settled_at else done) / settled_s,
        "held": state["held"],
        "kept_in_inbox": state["in_inbox"],
        # When the server told an IDLEing client of the new mail, after the burst began.
        "announced_seconds": heard - began if heard is not None else None,
        "began_wall_clock": wall_began,
        "proxy_cpu_seconds": proxy_cpu,
        "dovecot_cpu_seconds": dove_cpu,  # without the probe's session
        "probe_dovecot_cpu_seconds": probe_cpu,
        "polls": polls,
    }
    if timed_out:
        say(f"  {size}: backlog of {count} not done after {settled_s:.0f} s: {state}")
    told = result["announced_seconds"]
    say(
        f"  {size}: backlog of {count}: all tagged in {result['tagged_seconds']:.2f} s "
        f"({result['rate_tagged']:.0f} msg/s), held ones moved by "
        f"{result['settled_seconds']:.2f} s ({result['rate_settled']:.0f} msg/s); "
        f"{state['held']} held; the server announced the mail to IDLE after "
        + (f"{told:.2f} s" if told is not None else "(not heard)")
    )
    return result


class Announcement:
    """A direct client IDLEing on INBOX in a thread: when the server first reports EXISTS."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = SizeClient(port, user, password)
        self.client.command("SELECT INBOX")
        self.heard: float | None = None
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._tag = b""

    def start(self) -> None:
        self._tag = self.client.idle_start()
        self._thread.start()

    def _listen(self) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while True:
                data = self.client.sock.recv(65536)
                if not data:
                    return
                if b"EXISTS" in data:
                    self.heard = time.perf_counter()
                    # Hang up: an IDLE session would follow every change triage makes.
                    self.client.sock.close()
                    return

    def stop(self) -> float | None:
        with contextlib.suppress(OSError):
            self.client.sock.shutdown(socket.SHUT_RDWR)  # not heard: ends the thread's recv
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self.client.sock.close()
        return self.heard


def backlog_by_server(
    dovecot: Dovecot, user: str, password: str, count: int, size: int, say: Say, *, grouped: bool
) -> dict[str, Any]:
    """The same work from a plain direct client, no proxy running: the server's own time.

    ``grouped``: the commands as triage sends them (flags per group, bodies per step, one
    STORE per label and one UID MOVE per hold mailbox per group); else the older shape, a
    STORE and a UID MOVE of a whole step into one mailbox."""
    client = SizeClient(dovecot.imap_port, user, password)
    tag = "grouped" if grouped else "stepwise"
    try:
        base = last_uid(client)
        messages = [generated_message(i, f"server{tag}{size}") for i in range(count)]
        drop_new_mail(dovecot, user, messages)
        # Dovecot reads the new files: delivery, not triage (triage's watcher hears of the
        # mail only after its own session has read them, while the server waits to tell).
        first_look = client.timed("NOOP")[0]
        uids = search_uids(client, f"UID {base + 1}:*", base)
        if len(uids) != count:
            raise RuntimeError(f"server backlog: {len(uids)} new messages, expected {count}")
        for mailbox in HOLD_MAILBOXES:
            with contextlib.suppress(RuntimeError):  # triage made it already
                client.command(f'CREATE "{mailbox}"')
        times = {"fetch": 0.0, "store": 0.0, "move": 0.0}
        commands = {"fetch": 0, "store": 0, "move": 0}

        def timed(kind: str, command: str) -> None:
            times[kind] += client.timed(command)[0]
            commands[kind] += 1

        items = f"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER] BODY.PEEK[TEXT]<0.{BODY_PREFIX}>)"
        for first in range(0, len(uids), GROUP if grouped else CHUNK):
            group = uids[first : first + (GROUP if grouped else CHUNK)]
            group_set = ",".join(map(str, group))
            timed("fetch", f"UID FETCH {group_set} (UID FLAGS)")
            for start in range(0, len(group), CHUNK):
                chunk = group[start : start + CHUNK]
                uid_set = ",".join(map(str, chunk))
                timed("fetch", f"UID FETCH {uid_set} {items}")
                if not grouped:
                    timed("store", f"UID STORE {uid_set} +FLAGS.SILENT ($Triaged $Later)")
                    timed("move", f'UID MOVE {uid_set} "Later"')
            if grouped:
                # Half the messages each way, as the generated mail splits between two labels.
                halves = (group[0::2], group[1::2])
                for label, part in zip(("$Later", "$Bulk"), halves, strict=True):
                    part_set = ",".join(map(str, part))
                    timed("store", f"UID STORE {part_set} +FLAGS.SILENT ($Triaged {label})")
                for mailbox, part in zip(HOLD_MAILBOXES, halves, strict=True):
                    timed("move", f'UID MOVE {",".join(map(str, part))} "{mailbox}"')
    finally:
        client.close()
    total = sum(times.values())
    result = {
        "messages": count,
        "seconds": times | {"total": total},
        "commands": commands,
        "first_look_seconds": first_look,
        "rate": count / total,
        "move_rate": count / times["move"],
    }
    shape = "as triage sends them" if grouped else f"the older shape, one UID MOVE per {CHUNK}"
    say(
        f"  {size}: the server alone, {shape}: {total:.2f} s for {count} (FETCH "
        f"{times['fetch']:.2f}, STORE {times['store']:.2f}, MOVE {times['move']:.2f} s in "
        f"{commands['move']}): {result['rate']:.0f} msg/s; its first look at the new mail "
        f"(NOOP, not counted) {first_look * 1e3:.0f} ms"
    )
    return result


# -- one size --------------------------------------------------------------------------------


def median_ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def summarize(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    """Per path: medians over the rounds of each sample's median; ratios paired per round."""

    def per_round(name: str, what: str) -> list[float]:
        return [statistics.median(getattr(s, what)) for s in samples[name]]

    def mbps(name: str) -> list[float]:
        return [s.fetch_bytes / s.fetch_seconds / 1e6 for s in samples[name]]

    out: dict[str, Any] = {}
    for name in PATHS:
        row: dict[str, Any] = {}
        for what in ("noop", "select", "idle", "flags"):
            values = per_round(name, what)
            row[f"{what}_ms"] = statistics.median(values) * 1e3
            row[f"{what}_ms_per_round"] = [round(v * 1e3, 4) for v in values]
            row[f"{what}_vs_raw"] = median_ratio(values, per_round("raw relay", what))
            row[f"{what}_ms_best"] = min(min(getattr(s, what)) for s in samples[name]) * 1e3
        row["fetch_mb_per_s"] = statistics.median(mbps(name))
        row["fetch_mb_per_s_per_round"] = [round(v, 1) for v in mbps(name)]
        row["fetch_vs_raw"] = median_ratio(mbps(name), mbps("raw relay"))
        cpus = [s.cpu for s in samples[name] if s.cpu is not None]
        if cpus:
            row["cpu_seconds_per_sample"] = [round(c, 3) for c in cpus]
        row["samples"] = [
            {
                "noop_ms": [round(x * 1e3, 4) for x in s.noop],
                "select_ms": [round(x * 1e3, 4) for x in s.select],
                "idle_ms": [round(x * 1e3, 4) for x in s.idle],
                "flags_ms": [round(x * 1e3, 3) for x in s.flags],
                "fetch_seconds": s.fetch_seconds,
                "fetch_bytes": s.fetch_bytes,
                "sample_wall_seconds": round(s.wall, 3),
            }
            for s in samples[name]
        ]
        out[name] = row
    return out


def size_table(size: int, result: dict[str, Any]) -> list[str]:
    paths = result["paths"]
    head = (
        f"{'INBOX ' + format(size, ','):<24} | {'NOOP ms':>8} | {'SELECT ms':>9} | "
        f"{'IDLE ms':>8} | {'FLAGS 1:* ms':>12} | {'fetch MB/s':>10}"
    )
    lines = [head, "-" * len(head)]
    for name in PATHS:
        row = paths[name]
        lines.append(
            f"{name:<24} | {row['noop_ms']:>8.3f} | {row['select_ms']:>9.3f} | "
            f"{row['idle_ms']:>8.3f} | {row['flags_ms']:>12.1f} | {row['fetch_mb_per_s']:>10.1f}"
        )
    for name in ("commsproxy", TRIAGE):
        row = paths[name]
        lines.append(
            f"{name + ' / raw':<24} | {row['noop_vs_raw']:>7.2f}x | "
            f"{row['select_vs_raw']:>8.2f}x | "
            f"{row['idle_vs_raw']:>7.2f}x | {row['flags_vs_raw']:>11.2f}x | "
            f"{row['fetch_vs_raw']:>9.2f}x"
        )
    lines.append(
        "fastest single SELECT, ms: "
        + ", ".join(f"{name} {paths[name]['select_ms_best']:.3f}" for name in PATHS)
        + " (Dovecot answers some sessions' SELECT far slower than others', on every path)"
    )
    if all("select_server_ms" in paths[name] for name in PATHS):
        lines.append(
            "SELECT as Dovecot timed it itself (its tagged OK), median ms: "
            + ", ".join(f"{name} {paths[name]['select_server_ms']:.1f}" for name in PATHS)
        )
    off, on = result["idle_cpu"]["triage off"], result["idle_cpu"]["triage on"]
    lines.append(
        f"idle {on['seconds']:.0f} s, a client IDLEing through the proxy: triage on: proxy "
        f"{on['proxy_cpu_pct']:.3f}% CPU, Dovecot {on['dovecot_cpu_pct']:.3f}%; triage off: "
        f"proxy {off['proxy_cpu_pct']:.3f}%, Dovecot {off['dovecot_cpu_pct']:.3f}%"
    )
    lines.append(
        f"triaging proxy: RSS {result['rss_idle_mb']:.1f} MB idle; caught up with the INBOX "
        f"{result['catch_up_seconds']:.1f} s after it was ready"
    )
    if "backlog" in result:
        b, s = result["backlog"], result["backlog_server"]
        old = result.get("backlog_server_stepwise")
        told = b.get("announced_seconds")
        lines.append(
            f"backlog of {b['messages']}: held ones moved by {b['settled_seconds']:.2f} s = "
            f"{b['rate_settled']:.0f} msg/s (all tagged in {b['tagged_seconds']:.2f} s = "
            f"{b['rate_tagged']:.0f} msg/s; proxy CPU {b['proxy_cpu_seconds']:.2f} s, Dovecot "
            f"{b['dovecot_cpu_seconds']:.2f} s, the probe's session "
            f"{b['probe_dovecot_cpu_seconds']:.2f} s apart; the server announced the mail "
            + (f"after {told:.2f} s)" if told is not None else "(not heard))")
        )
        logged = b.get("last_hold_logged_seconds")
        if logged:
            lines.append(
                f"  the proxy logged its last hold (UID MOVE answered) at {logged:.2f} s = "
                f"{b['messages'] / logged:.0f} msg/s, "
                f"{b['messages'] / logged / server_rate(b, s):.2f}x"
                f" the server alone with its announcement (the probe polls every {POLL:g} s)"
            )
        lines.append(
            f"  the server alone, as triage sends the commands: {server_rate(b, s):.0f} msg/s "
            f"with its announcement, {s['rate']:.0f} msg/s the commands alone (MOVE "
            f"alone {s['move_rate']:.0f} msg/s, {s['commands']['move']} UID MOVEs, "
            f"{s['seconds']['move'] * 1e3 / max(s['commands']['move'], 1):.0f} ms each)"
            + (
                f"; in the older shape (a UID MOVE per step of {CHUNK}, one mailbox): "
                f"{old['rate']:.0f} msg/s ({old['commands']['move']} UID MOVEs, "
                f"{old['seconds']['move'] * 1e3 / max(old['commands']['move'], 1):.0f} ms each)"
                if old
                else ""
            )
        )
        if b.get("moves_logged"):
            sent = sum(-(-n // MOVE_CHUNK) for n in b["moves_logged"])
            lines.append(
                f"  triage held them {len(b['moves_logged'])} times (largest "
                f"{max(b['moves_logged'])}), in {sent} UID MOVEs of at most {MOVE_CHUNK}"
            )
    return lines


def server_rate(backlog: dict[str, Any], server: dict[str, Any]) -> float:
    """The server alone's messages per second, counting its delay in announcing the mail."""
    told = backlog.get("announced_seconds") or 0.0
    return float(server["messages"] / (told + server["seconds"]["total"]))


def size_verdicts(size: int, result: dict[str, Any]) -> list[tuple[str, bool]]:
    t = result["paths"][TRIAGE]
    at = f"at {size:,}"
    verdicts = [
        (
            f"{label} {at} <= {TARGET_ROUND_TRIP}x raw ({t[key]:.2f}x)",
            t[key] <= TARGET_ROUND_TRIP,
        )
        for label, key in (
            ("NOOP", "noop_vs_raw"),
            ("SELECT", "select_vs_raw"),
            ("IDLE", "idle_vs_raw"),
        )
    ]
    verdicts.append(
        (
            f"bulk fetch {at} >= {TARGET_THROUGHPUT}x raw ({t['fetch_vs_raw']:.2f}x)",
            t["fetch_vs_raw"] >= TARGET_THROUGHPUT,
        )
    )
    verdicts.append(
        (
            f"FETCH 1:* (FLAGS) {at} <= {TARGET_FLAGS}x raw ({t['flags_vs_raw']:.2f}x)",
            t["flags_vs_raw"] <= TARGET_FLAGS,
        )
    )
    on, off = result["idle_cpu"]["triage on"], result["idle_cpu"]["triage off"]
    extra = on["dovecot_cpu_pct"] - off["dovecot_cpu_pct"]
    verdicts.append(
        (
            f"idle CPU {at}: proxy < {TARGET_IDLE_CPU}% ({on['proxy_cpu_pct']:.3f}%), Dovecot "
            f"< {TARGET_IDLE_CPU}% above triage off ({extra:+.3f}%)",
            on["proxy_cpu_pct"] < TARGET_IDLE_CPU and extra < TARGET_IDLE_CPU,
        )
    )
    verdicts.append(
        (
            f"triaging proxy RSS idle {at} <= {TARGET_RSS_MB:.0f} MB "
            f"({result['rss_idle_mb']:.1f} MB)",
            result["rss_idle_mb"] <= TARGET_RSS_MB,
        )
    )
    if "backlog" in result:
        b, s = result["backlog"], result["backlog_server"]
        # Done means held ones moved away: what the server alone's time includes too; and the
        # server alone, like triage, cannot start before the server announces the mail.
        rate, server = b["rate_settled"], server_rate(b, s)
        if b["timed_out"]:
            verdicts.append(
                (
                    f"backlog {at}: not all triaged within {b['settled_seconds']:.0f} s "
                    f"({rate:.0f} msg/s until then; {b['state_at_end']})",
                    False,
                )
            )
        elif rate >= TARGET_BACKLOG:
            verdicts.append((f"backlog {at} >= {TARGET_BACKLOG:.0f} msg/s ({rate:.0f})", True))
        elif server < TARGET_BACKLOG:
            ok = rate >= TARGET_BACKLOG_OF_SERVER * server
            verdicts.append(
                (
                    f"backlog {at}: {rate:.0f} msg/s, limited by the server (alone {server:.0f} "
                    f"msg/s with its announcement, {s['rate']:.0f} without; its MOVE "
                    f"{s['move_rate']:.0f}): >= {TARGET_BACKLOG_OF_SERVER}x of it "
                    f"({rate / server:.2f}x; {rate / s['rate']:.2f}x of the commands alone)",
                    ok,
                )
            )
        else:
            verdicts.append(
                (
                    f"backlog {at} >= {TARGET_BACKLOG:.0f} msg/s ({rate:.0f}; not the server: "
                    f"alone it does {server:.0f} with its announcement)",
                    False,
                )
            )
    return verdicts


def measure_size(
    dovecot: Dovecot,
    size: int,
    plan: Plan,
    shared: dict[str, Server],
    work: Path,
    say: Say,
) -> tuple[dict[str, Any], Path, tuple[str, str]]:
    user, password = dovecot.new_user()
    t0 = time.perf_counter()
    messages = [generated_message(i, f"inbox{size}") for i in range(size)]
    fill_inbox(dovecot, user, messages, keywords=ALREADY_TRIAGED)
    result: dict[str, Any] = {
        "user": user,
        "message_bytes": sum(map(len, messages)),
        "fill_seconds": time.perf_counter() - t0,
    }
    del messages
    say(
        f"INBOX of {user}: {size:,} messages, {result['message_bytes'] / 1e6:.1f} MB, written "
        f"and indexed in {result['fill_seconds']:.1f} s"
    )
    plain = shared["commsproxy"]
    result["idle_cpu"] = {
        "triage off": idle_window(dovecot, plain.port, plain.pid, user, password, plan.idle_seconds)
    }
    directory = work / f"triage-{size}"
    t0 = time.perf_counter()
    proxy = start_triage_proxy(dovecot, user, password, directory, plan.connections)
    try:
        result["triage_ready_seconds"] = time.perf_counter() - t0
        direct = SizeClient(dovecot.imap_port, user, password)
        top = last_uid(direct)
        direct.close()
        result["catch_up_seconds"] = wait_caught_up(
            directory / "state", user, top, timeout=120 + size / 200
        )
        say(
            f"  {size}: triaging proxy ready in {result['triage_ready_seconds']:.1f} s, caught "
            f"up {result['catch_up_seconds']:.1f} s later"
        )
        bench = SizeBench(
            size=size,
            ports={
                "direct": dovecot.imap_port,
                "raw relay": shared["raw relay"].port,
                "commsproxy": plain.port,
                TRIAGE: proxy.imap_port,
            },
            pids={"raw relay": shared["raw relay"].pid, "commsproxy": plain.pid, TRIAGE: proxy.pid},
            user=user,
            password=password,
            plan=plan,
            say=say,
        )
        bench.open()
        try:
            samples = bench.run()
        finally:
            bench.close()
        result["fetch_repeat"] = bench.fetch_repeat
        result["paths"] = summarize(samples)
        for name, times in bench.server_select.items():
            if times:
                result["paths"][name]["select_server_ms"] = statistics.median(times) * 1e3
        result["idle_cpu"]["triage on"] = idle_window(
            dovecot, proxy.imap_port, proxy.pid, user, password, plan.idle_seconds
        )
        result["rss_idle_mb"] = rss_kb(proxy.pid) / 1024
        if plan.backlog > 0:
            logged = len(proxy.lines())
            result["backlog"] = backlog_through_triage(
                dovecot, proxy.pid, user, password, plan.backlog, size, say
            )
            # Each "held N message(s)" is one hold, sent as UID MOVEs of at most MOVE_CHUNK: on
            # maildir each UID MOVE costs about the same whatever its size, growing with the INBOX.
            moves = [int(m.group(1)) for m in map(HELD_LOG.search, proxy.lines()[logged:]) if m]
            result["backlog"]["moves_logged"] = moves
            # The probe polls every POLL seconds, so "held ones moved" is late by up to a poll
            # and its commands; the proxy logs each hold as its UID MOVE is answered. Reported
            # beside the probe's figure, which the verdict keeps.
            last = max(
                map(log_clock, filter(HELD_LOG.search, proxy.lines()[logged:])), default=None
            )
            began = result["backlog"]["began_wall_clock"]
            result["backlog"]["last_hold_logged_seconds"] = (
                last - began if last is not None else None
            )
    finally:
        proxy.stop()
    result["triage_log_warnings"] = [
        line for line in proxy.lines() if " WARNING " in line or " ERROR " in line
    ][-10:]
    if plan.backlog > 0:
        result["backlog_server"] = backlog_by_server(
            dovecot, user, password, plan.backlog, size, say, grouped=True
        )
        result["backlog_server_stepwise"] = backlog_by_server(
            dovecot, user, password, plan.backlog, size, say, grouped=False
        )
    return result, directory, (user, password)


def measure_connections(
    dovecot: Dovecot, directory: Path, login: tuple[str, str], count: int, say: Say
) -> dict[str, Any]:
    """``count`` idle logged-in connections through a fresh triaging proxy, then the raw relay."""
    from tests.testbed.triage import triage_proxy

    out: dict[str, Any] = {}
    logins = [login] * count
    for name in (TRIAGE, "raw relay"):
        say(f"{count} idle logged-in connections through {name}")
        if name == TRIAGE:
            proxy = triage_proxy(directory / "config.toml")
            try:
                out[name] = measure_idle(proxy.imap_port, proxy.pid, logins)
            finally:
                proxy.stop()
        else:
            raw = start_raw_relay(dovecot.imap_port)
            try:
                out[name] = measure_idle(raw.port, raw.pid, logins)
            finally:
                raw.stop()
    return out


# -- the run ---------------------------------------------------------------------------------


def run_benchmark(
    plan: Plan,
    say: Say,
    report: dict[str, Any],
    lines: list[str],
    verdicts: list[tuple[str, bool]],
) -> None:
    """Fills ``report``, ``lines`` and ``verdicts`` as it goes: a failure keeps what was done."""
    from tests.testbed.dovecot import Dovecot

    class RoomyDovecot(Dovecot):
        """The test bed's Dovecot with room for many connections, its mail in memory.

        A disk mounted with ``discard`` takes minutes to delete 100,000 maildir files; tmpfs
        takes a second, and the INBOX's pages are in memory for every path alike.
        """

        def __init__(self) -> None:
            super().__init__()
            self.mail_root = Path(tempfile.mkdtemp(dir=SHM, prefix="commsproxy-bench-"))
            self.mail_root.chmod(0o755)  # the mail user traverses it
            self.home_dir = self.mail_root / "home"

        def _render_config(self) -> str:
            return roomy_config(super()._render_config())

        def stop(self) -> None:
            try:
                super().stop()
            finally:
                shutil.rmtree(self.mail_root, ignore_errors=True)

    began = time.perf_counter()
    nofile = raise_nofile(4 * plan.connections + 1024)
    report["plan"] = plan.__dict__
    report["environment"] = environment() | {
        "nofile_limit": list(nofile),
        "uncommitted_in_commsproxy": uncommitted(),
    }
    report["messages"] = "generated (mailbox_size.py generated_message), about 700 bytes each"
    report["sizes"] = {}
    shared: dict[str, Server] = {}
    with RoomyDovecot() as dovecot, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # commsproxy run writes its log file under XDG_STATE_HOME: the run's own, not the user's.
        os.environ["XDG_STATE_HOME"] = str(work / "state-home")
        try:
            shared["raw relay"] = start_raw_relay(dovecot.imap_port)
            shared["commsproxy"] = start_commsproxy(dovecot.imap_port, work / "plain")
            last: tuple[Path, tuple[str, str]] | None = None
            for size in plan.sizes:
                load = os.getloadavg()[0]
                result, directory, login = measure_size(dovecot, size, plan, shared, work, say)
                result["load_average"] = [load, os.getloadavg()[0]]
                report["sizes"][str(size)] = result
                last = (directory, login)
                lines.append("")
                lines.append(
                    f"1-min load average {load:.2f} before, {os.getloadavg()[0]:.2f} after "
                    "(2 CPUs shared with other work: compare the ratios, paired per round)"
                )
                lines += size_table(size, result)
                verdicts += size_verdicts(size, result)
        finally:
            for server in shared.values():
                server.stop()
        if plan.connections > 0 and last is not None:
            conns = measure_connections(dovecot, last[0], last[1], plan.connections, say)
            report["connections"] = conns
            tri, raw = conns[TRIAGE], conns["raw relay"]
            ratio = tri["per_connection_kb"] / max(raw["per_connection_kb"], 1e-9)
            lines.append("")
            lines.append(
                f"{plan.connections} idle logged-in connections: commsproxy+triage RSS "
                f"{tri['rss_before_mb']:.1f} -> {tri['rss_with_connections_mb']:.1f} MB "
                f"({tri['per_connection_kb']:.1f} kB each, {tri['connections_logged_in']} logged "
                f"in); raw relay {raw['rss_before_mb']:.1f} -> "
                f"{raw['rss_with_connections_mb']:.1f} MB ({raw['per_connection_kb']:.1f} kB "
                f"each, {raw['connections_logged_in']} logged in)"
            )
            verdicts.append(
                (
                    f"{plan.connections} idle connections: memory each <= {TARGET_CONN_MEMORY}x "
                    f"the raw relay's ({ratio:.2f}x)",
                    ratio <= TARGET_CONN_MEMORY
                    and tri["connections_logged_in"] == plan.connections
                    and raw["connections_logged_in"] == plan.connections,
                )
            )
    report["elapsed_seconds"] = round(time.perf_counter() - began, 1)


def headline(report: dict[str, Any]) -> str:
    env = report["environment"]
    uncommitted_files = env["uncommitted_in_commsproxy"]
    return (
        f"commsproxy {env['commsproxy_commit']}, {env['cpus']} CPUs, load average "
        f"{env['load_average_at_start'][0]:.2f} at start; messages generated (~700 bytes)"
        + (f"; uncommitted: {', '.join(uncommitted_files)}" if uncommitted_files else "")
    )


def uncommitted() -> list[str]:
    """Files under commsproxy/ that differ from the commit: the code measured is not only it."""
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", "commsproxy"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    return [line[3:] for line in status.stdout.splitlines() if line[3:]]


def parse_sizes(text: str) -> list[int]:
    sizes = [int(part) for part in text.split(",") if part.strip()]
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("expected sizes such as 1000,10000,100000")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="commsproxy's cost against the INBOX's size: direct, raw relay, "
        "commsproxy and commsproxy with triage, side by side."
    )
    parser.add_argument("--sizes", type=parse_sizes, help="INBOX sizes (default 1000,10000,100000)")
    parser.add_argument("--rounds", type=int, help="rounds per size (default 3; --quick 2)")
    parser.add_argument("--backlog", type=int, help="new messages at once (default 2000; 0 skips)")
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window (default 10)")
    parser.add_argument("--connections", type=int, help="idle connections (default 2000; 0 skips)")
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000, fewer samples")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny run that proves the benchmark works"
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    plan = plan_from(args)
    sys.path.insert(0, str(REPO))
    from tests.testbed.dovecot import DovecotError

    report: dict[str, Any] = {}
    lines: list[str] = []
    verdicts: list[tuple[str, bool]] = []
    failed: str | None = None
    try:
        run_benchmark(plan, print_now, report, lines, verdicts)
    except (DovecotError, RuntimeError, OSError) as err:
        failed = f"{type(err).__name__}: {err}"
        report["error"] = failed
    report["targets"] = [{"target": text, "pass": ok} for text, ok in verdicts]
    print()
    if "environment" in report:
        print(headline(report))
    print("\n".join(lines))
    print()
    for text, ok in verdicts:
        print(f"{'PASS' if ok else 'MISS'}  {text}")
    if "elapsed_seconds" in report:
        print(f"({report['elapsed_seconds']} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")
    if failed is not None:
        print(f"mailbox-size benchmark could not finish: {failed}", file=sys.stderr)
        return 2
    missed = [text for text, ok in verdicts if not ok]
    if missed and not plan.smoke:
        print(f"missed {len(missed)} target(s): " + "; ".join(missed), file=sys.stderr)
        return 1
    return 0


def print_now(text: str) -> None:
    print(text, flush=True)


if __name__ == "__main__":
    sys.exit(main())
