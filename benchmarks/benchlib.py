"""What the benchmarks of the IMAP path share: the relays under test, a lean client, the data.

``relay.py`` (what the relay costs) and ``mailbox_size.py`` (that the cost does not grow with
the INBOX) measure the same paths with the same tools, kept here once:

* the raw relay: the tightest byte-for-byte asyncio copy loop, the yardstick for every relay
  target (run as ``python benchmarks/benchlib.py --raw-relay UPSTREAM_PORT`` in its own
  process, so it competes for the CPUs like commsproxy does);
* ``Server``: a relay under test as a child process; ``start_commsproxy`` without triage;
* CPU time and memory of a process from /proc;
* ``load_corpus`` / ``fill_inbox``: real messages written straight into the test Dovecot's
  maildir, then indexed once;
* ``Client``: a blocking raw-socket IMAP client that costs as little as possible, and
  ``check_fetch``, which frames a whole FETCH response by its literal sizes;
* idle logged-in connections and the RSS they cost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import platform
import resource
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.testbed.dovecot import Dovecot

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path("/work/shared/data/spamassassin/spamassassin-ham-spam.tar.gz")
HOST = "127.0.0.1"
READ_SIZE = 256 * 1024  # the raw relay's read size; commsproxy's relay reads the same
LOGIN_CONCURRENCY = 25  # Dovecot's imap-login process_limit defaults to 100


# -- the raw relay (runs as ``benchlib.py --raw-relay PORT`` in its own process) -----------------


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


async def raw_relay_main(upstream_port: int) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(HOST, upstream_port, limit=READ_SIZE)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_copy(client_r, up_w), _copy(up_r, client_w), return_exceptions=True)

    server = await asyncio.start_server(handle, HOST, 0, limit=READ_SIZE)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


# -- processes under test ---------------------------------------------------------------------


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of a process: all threads (schedstat, ns resolution), and the user/system
    split (/proc/PID/stat, clock-tick resolution: meaningful summed over many samples)."""

    total: float = 0.0
    user: float = 0.0
    system: float = 0.0

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.total - other.total, self.user - other.user, self.system - other.system)

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.total + other.total, self.user + other.user, self.system + other.system)


def cpu_of(pid: int) -> Cpu:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += int((task / "schedstat").read_text().split()[0])
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return Cpu(total / 1e9, int(fields[11]) / _TICK, int(fields[12]) / _TICK)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def read_greeting(port: int, timeout: float) -> bytes:
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data


class Server:
    """A relay under test running as a child process: the raw relay or commsproxy."""

    def __init__(self, name: str, argv: list[str], port: int | None, env: dict[str, str]) -> None:
        self.name = name
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in stop)
        self.proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        if port is None:  # the raw relay prints the port it got
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line.strip().isdigit():
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log_text()}")
            port = int(line)
        self.port = port
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError):
                if read_greeting(port, 5).startswith(b"* OK"):
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} did not start:\n{self.log_text()}")
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def log_text(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_raw_relay(upstream_port: int) -> Server:
    argv = [sys.executable, str(Path(__file__).resolve()), "--raw-relay", str(upstream_port)]
    return Server("raw relay", argv, None, dict(os.environ))


def start_commsproxy(upstream_port: int, config_home: Path) -> Server:
    # ``-q`` leaves out the "listening on" log line, so the port is chosen here.
    port = free_port()
    argv = [
        sys.executable, "-m", "commsproxy", "run",
        "--upstream", f"imap://{HOST}:{upstream_port}",
        "--listen", f"{HOST}:{port}",
        "-q",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "COMMSPROXY_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(config_home)  # no user config file can leak in
    # The relay alone: triage would move the benchmark's INBOX into hold mailboxes while it is
    # fetched (benchmarks/triage.py measures triage), and its state stays out of the user's.
    config = config_home / "commsproxy" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    state = config_home / "state"
    config.write_text(f'[proxy]\nstate_dir = "{state}"\n[triage]\nenabled = false\n')
    return Server("commsproxy", argv, port, env)


# -- loading the corpus -----------------------------------------------------------------------


def load_corpus(path: Path, count: int | None = None) -> list[bytes]:
    """``count`` messages (default all) spread evenly over the whole corpus, in name order."""
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        count = len(members) if count is None else count
        if count > len(members):
            raise SystemExit(f"--messages {count}: the corpus has only {len(members)} messages")
        picked = [members[i * len(members) // count] for i in range(count)]
        out = []
        for member in picked:
            handle = tar.extractfile(member)
            assert handle is not None
            out.append(handle.read())
        return out


def fill_inbox(
    dovecot: Dovecot, user: str, messages: list[bytes], *, keywords: Sequence[str] = ()
) -> None:
    """Write the messages as maildir files into ``user``'s INBOX, then let Dovecot index them.

    ``keywords`` go on every message (e.g. the ones triage wrote on mail it already decided):
    maildir keeps them as letters in the file name, listed in ``dovecot-keywords``.
    """
    maildir = dovecot.home_dir / user / "Maildir"
    uid, gid = dovecot.identity.uid, dovecot.identity.gid
    made = [dovecot.home_dir / user, maildir, *(maildir / sub for sub in ("cur", "new", "tmp"))]
    for directory in made:
        directory.mkdir(mode=0o700, exist_ok=True)
    letters = "abcdefghijklmnopqrstuvwxyz"[: len(keywords)]
    if keywords:
        listing = maildir / "dovecot-keywords"
        listing.write_text("".join(f"{i} {word}\n" for i, word in enumerate(keywords)))
        made.append(listing)
    stamp = int(time.time())
    for i, message in enumerate(messages):
        name = f"{stamp}.M{i:06d}P{os.getpid()}.bench,S={len(message)}:2,{letters}"
        file = maildir / "cur" / name
        file.write_bytes(message)
        if not dovecot.identity.rootless:
            os.chown(file, uid, gid)
    if not dovecot.identity.rootless:
        for path in made:
            os.chown(path, uid, gid)
    dovecot.doveadm("force-resync", "-u", user, "INBOX")
    have = dovecot.message_count(user)
    if have != len(messages):
        raise RuntimeError(f"INBOX of {user} has {have} messages, expected {len(messages)}")


# -- a blocking IMAP client that reads everything ---------------------------------------------


class Client:
    """One logged-in IMAP connection; raw socket, so the client costs as little as possible."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=120)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._seq = 0
        self._fetch_buf = bytearray()
        greeting = self._read_tagged(b"*")
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"unexpected greeting on port {port}: {greeting[:100]!r}")
        self.command(f"LOGIN {user} {password}")
        self.command("SELECT INBOX")

    def _tag(self) -> bytes:
        self._seq += 1
        return b"b%05d" % self._seq

    def _read_tagged(self, tag: bytes) -> bytes:
        return self._read_line_starting(tag + b" ")

    def _read_line_starting(self, prefix: bytes) -> bytes:
        """Everything up to and including the first read ending in a line that starts so."""
        data = bytearray()
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            data += chunk
            if data.endswith(b"\r\n"):
                start = data.rfind(b"\n", 0, len(data) - 1) + 1
                if data.startswith(prefix, start):
                    return bytes(data)

    def command(self, text: str) -> bytes:
        tag = self._tag()
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        response = self._read_tagged(tag)
        start = response.rfind(b"\n", 0, len(response) - 1) + 1
        if not response.startswith(tag + b" OK", start):
            raise RuntimeError(f"{text.split()[0]} failed: {response[start:][:200]!r}")
        return response

    def fetch_all(self, expected_bytes: int) -> tuple[float, bytes]:
        """``UID FETCH 1:* (BODY.PEEK[])``: seconds until the tagged reply, and the reply."""
        tag = self._tag()
        need = expected_bytes + expected_bytes // 4 + (4 << 20)
        if len(self._fetch_buf) < need:
            self._fetch_buf = bytearray(need)  # zero-filled: its pages are touched here
        buf = self._fetch_buf
        end_marker = tag + b" "
        sock = self.sock
        n = 0
        with memoryview(buf) as view:
            start = time.perf_counter()
            sock.sendall(tag + b" UID FETCH 1:* (BODY.PEEK[])\r\n")
            while True:
                if n == len(buf):
                    raise RuntimeError("fetch response larger than its buffer")
                got = sock.recv_into(view[n:])
                if not got:
                    raise ConnectionError("server closed the connection mid-FETCH")
                n += got
                if buf[n - 2 : n] == b"\r\n":
                    line_start = buf.rfind(b"\n", 0, n - 1) + 1
                    if buf.startswith(end_marker, line_start):
                        elapsed = time.perf_counter() - start
                        return elapsed, bytes(view[:n])

    def noops(self, count: int) -> tuple[float, list[float]]:
        """``count`` NOOPs, each sent when the previous one is answered: total and each, in s."""
        sock = self.sock
        commands = []
        for _ in range(count):
            tag = self._tag()
            commands.append((tag + b" NOOP\r\n", tag + b" OK"))
        each: list[float] = []
        clock = time.perf_counter
        start = clock()
        sent = start
        for command, ok in commands:
            sock.sendall(command)
            reply = sock.recv(65536)
            while not reply.endswith(b"\r\n"):
                reply += sock.recv(65536)
            done = clock()
            each.append(done - sent)
            sent = done
            line_start = reply.rfind(b"\n", 0, len(reply) - 1) + 1
            if not reply.startswith(ok, line_start):
                raise RuntimeError(f"NOOP answered {reply!r}")
        return clock() - start, each

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.command("LOGOUT")
        self.sock.close()


@dataclass(frozen=True)
class FetchCheck:
    messages: int
    literal_bytes: int
    digest: str  # of everything before the tagged completion


def check_fetch(response: bytes) -> FetchCheck:
    """Frame the whole response: every literal skipped by its size, never searched."""
    pos = messages = literal_bytes = 0
    size = len(response)
    while True:
        eol = response.find(b"\r\n", pos)
        if eol < 0:
            raise RuntimeError("FETCH response ends inside a line")
        line = response[pos:eol]
        if line.endswith(b"}"):
            open_at = line.rfind(b"{")
            length = int(line[open_at + 1 : -1])
            if line.startswith(b"* "):
                messages += 1
            literal_bytes += length
            pos = eol + 2 + length
            if pos > size:
                raise RuntimeError("FETCH response ends inside a literal")
            continue
        if not line.startswith((b"* ", b")")):
            if b" OK " not in line[:16]:
                raise RuntimeError(f"FETCH failed: {line[:200]!r}")
            digest = hashlib.sha256(response[:pos]).hexdigest()
            return FetchCheck(messages, literal_bytes, digest)
        pos = eol + 2


async def open_idle(
    port: int, user: str, password: str, gate: asyncio.Semaphore
) -> asyncio.StreamWriter:
    async with gate:
        reader, writer = await asyncio.open_connection(HOST, port)
        greeting = await reader.readline()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError(f"greeting {greeting[:100]!r}")
        writer.write(f"a LOGIN {user} {password}\r\n".encode())
        while line := await reader.readline():
            if line.startswith(b"a "):
                if not line.startswith(b"a OK"):
                    raise RuntimeError(f"LOGIN {user}: {line[:200]!r}")
                return writer
        raise ConnectionError(f"LOGIN {user}: connection closed")


async def hold_idle(
    port: int, pid: int, logins: list[tuple[str, str]], settle: float
) -> dict[str, Any]:
    gate = asyncio.Semaphore(LOGIN_CONCURRENCY)
    before = rss_kb(pid)
    start = time.perf_counter()
    tasks = [open_idle(port, user, pw, gate) for user, pw in logins]
    outcome = await asyncio.gather(*tasks, return_exceptions=True)
    opened = [w for w in outcome if isinstance(w, asyncio.StreamWriter)]
    errors = [repr(e) for e in outcome if isinstance(e, BaseException)]
    login_seconds = time.perf_counter() - start
    await asyncio.sleep(settle)
    with_conns = rss_kb(pid)
    peak = rss_kb(pid, "VmHWM")
    for writer in opened:
        writer.close()
    for writer in opened:
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return {
        "connections_requested": len(logins),
        "connections_logged_in": len(opened),
        "users": len(set(logins)),
        "errors": errors[:5],
        "error_count": len(errors),
        "login_seconds": round(login_seconds, 3),
        "rss_before_mb": before / 1024,
        "rss_with_connections_mb": with_conns / 1024,
        "peak_rss_mb": peak / 1024,
        "per_connection_kb": (with_conns - before) / max(1, len(opened)),
    }


def measure_idle(port: int, pid: int, logins: list[tuple[str, str]]) -> dict[str, Any]:
    """Log in ``logins`` through the relay listening on ``port`` (process ``pid``) and keep
    them open: its RSS before and with them."""
    time.sleep(0.5)  # let the fresh process finish starting up before the "before" reading
    return asyncio.run(hold_idle(port, pid, logins, settle=1.0))


def raise_nofile(needed: int) -> tuple[int, int]:
    """Raise the soft fd limit (children inherit it); returns the limits now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def dovecot_limits(dovecot: Dovecot) -> dict[str, str]:
    """The settings that bound how many connections the test bed takes."""
    text = subprocess.run(
        ["doveconf", "-c", str(dovecot.conf_file), "-a"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin"},
    ).stdout
    found: dict[str, str] = {}
    service = None
    for raw in text.splitlines():
        line = raw.strip()
        if raw.startswith("service "):
            service = raw.split()[1]
        elif raw.startswith("}"):
            service = None
        elif service in ("imap", "imap-login") and line.startswith(
            ("process_limit ", "client_limit ", "service_count ")
        ):
            key, _, value = line.partition(" = ")
            found[f"service {service} {key}"] = value
        elif service is None and line.startswith(
            ("mail_max_userip_connections ", "default_process_limit ", "default_client_limit ")
        ):
            key, _, value = line.partition(" = ")
            found[key] = value
    return found


def environment() -> dict[str, Any]:
    """The machine and code a benchmark ran on, for its JSON report."""
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "load_average_at_start": os.getloadavg(),
        "commsproxy_commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The raw asyncio relay the benchmarks run.")
    parser.add_argument("--raw-relay", type=int, metavar="UPSTREAM_PORT", required=True)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(raw_relay_main(args.raw_relay))
    return 0


if __name__ == "__main__":
    sys.exit(main())


@contextlib.contextmanager
def source_of(rev: str) -> Iterator[Path]:
    """The commsproxy package of commit ``rev``, in a temporary directory (``--against``)."""
    with tempfile.TemporaryDirectory(prefix="commsproxy-") as directory:
        archive = subprocess.run(
            ["git", "archive", rev, "commsproxy"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", directory], input=archive, check=True)
        yield Path(directory)
