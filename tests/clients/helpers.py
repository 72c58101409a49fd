"""Shared helpers for the real-client tests: programs, polling, mail, maildirs, configs, tmux.

The client tests drive Debian's mbsync, offlineimap, neomutt and swaks through the proxy and
then look at the upstream Dovecot directly (IMAP on its own port), so what they check is what
really reached the server, not what the proxy says it did.
"""

from __future__ import annotations

import base64
import contextlib
import email.policy
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from types import TracebackType
from typing import Literal, TypeVar

import pytest
from imapclient import IMAPClient

from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

T = TypeVar("T")

Security = Literal["plain", "starttls", "imaps"]
SECURITIES: tuple[Security, ...] = ("plain", "starttls", "imaps")

# The proxy's local certificate names localhost (DNS and IP SAN), but isync and imaplib2
# (offlineimap) only match DNS names, so every client connects to "localhost".
CLIENT_HOST = "localhost"

_DEBIAN_PACKAGE = {
    "mbsync": "isync",
    "offlineimap": "offlineimap3",
    "neomutt": "neomutt",
    "swaks": "swaks",
    "tmux": "tmux",
}


# -- programs -------------------------------------------------------------------------------


def require_program(name: str) -> str:
    """The program's path; a missing program fails the test (CI installs all of them)."""
    path = shutil.which(name)
    if path is None:
        package = _DEBIAN_PACKAGE.get(name, name)
        pytest.fail(
            f"{name!r} is not on PATH; the client tests need it: apt-get install {package}",
            pytrace=False,
        )
    return path


def client_env(home: Path) -> dict[str, str]:
    """Environment for a client: a private HOME so no user config or state leaks in or out."""
    env = {key: value for key, value in os.environ.items() if key not in ("TMUX", "MAIL")}
    env.update(HOME=str(home), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return env


def run_client(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float = 30.0,
    expect_success: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a client to completion; with ``expect_success`` a non-zero exit fails with its output."""
    try:
        result = subprocess.run(
            list(args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            env=dict(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as err:
        # run() has killed it; say what it had printed, which is where it got stuck.
        partial = subprocess.CompletedProcess(args, -9, _text(err.stdout), _text(err.stderr))
        raise AssertionError(
            f"{shlex.join(args)} still running after {timeout:g} s\n{output_of(partial)}"
        ) from None
    if expect_success and result.returncode != 0:
        raise AssertionError(f"{shlex.join(args)} exited {result.returncode}\n{output_of(result)}")
    return result


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return data or ""


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


# -- polling --------------------------------------------------------------------------------


def wait_until(
    probe: Callable[[], T],
    *,
    what: str | Callable[[], str],
    timeout: float = 10.0,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"gave up after {timeout:g} s waiting for {detail}")
        time.sleep(interval)  # polling interval, not a wait for anything in particular


def wait_for_count(dovecot: Dovecot, user: str, expected: int, mailbox: str = "INBOX") -> None:
    wait_until(
        lambda: dovecot.message_count(user, mailbox) == expected,
        what=lambda: (
            f"{expected} messages in {user}'s {mailbox} "
            f"(has {dovecot.message_count(user, mailbox)})"
        ),
    )


# -- messages -------------------------------------------------------------------------------


def token() -> str:
    """A short unique word for subjects, so a test only ever matches its own mail."""
    return uuid.uuid4().hex[:10]


def make_message(
    *, subject: str, body: str, to: str = "someone@localhost", sender: str = "a@example.org"
) -> bytes:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@commsproxy.test>"
    msg.set_content(body)
    return msg.as_bytes()


def deliver(dovecot: Dovecot, user: str, subject: str, body: str | None = None) -> None:
    """Deliver a message into ``user``'s INBOX upstream (LMTP), as if someone had sent it."""
    dovecot.deliver(
        user, make_message(subject=subject, body=body or subject, to=f"{user}@localhost")
    )


# -- the upstream, seen directly (never through the proxy) ----------------------------------


@dataclass(frozen=True)
class UpstreamMessage:
    uid: int
    subject: str
    flags: frozenset[str]


@contextlib.contextmanager
def upstream_imap(dovecot: Dovecot, user: str, password: str) -> Iterator[IMAPClient]:
    """A direct IMAP session to Dovecot, bypassing the proxy, to check what really happened."""
    client = IMAPClient(dovecot.host, port=dovecot.imap_port, ssl=False, timeout=30)
    try:
        client.login(user, password)
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.logout()


def upstream_messages(
    dovecot: Dovecot, user: str, password: str, mailbox: str = "INBOX"
) -> list[UpstreamMessage]:
    with upstream_imap(dovecot, user, password) as imap:
        imap.select_folder(mailbox, readonly=True)
        uids = imap.search("ALL")
        fetched = imap.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"]) if uids else {}
    result = []
    for uid, data in sorted(fetched.items()):
        header = BytesHeaderParser(policy=email.policy.default).parsebytes(
            data[b"BODY[HEADER.FIELDS (SUBJECT)]"]
        )
        flags = frozenset(flag.decode() for flag in data[b"FLAGS"])
        result.append(UpstreamMessage(uid, str(header["Subject"] or ""), flags))
    return result


def upstream_by_subject(messages: Sequence[UpstreamMessage]) -> dict[str, UpstreamMessage]:
    by_subject = {message.subject: message for message in messages}
    assert len(by_subject) == len(messages), f"duplicate subjects upstream: {messages}"
    return by_subject


def upstream_add_flag(
    dovecot: Dovecot, user: str, password: str, subject: str, flag: str, mailbox: str = "INBOX"
) -> None:
    with upstream_imap(dovecot, user, password) as imap:
        imap.select_folder(mailbox)
        uids = imap.search(["SUBJECT", subject])
        assert len(uids) == 1, f"expected one {subject!r} upstream, found UIDs {uids}"
        imap.add_flags(uids, [flag])


def upstream_folders(dovecot: Dovecot, user: str, password: str) -> set[str]:
    with upstream_imap(dovecot, user, password) as imap:
        return {name for _flags, _delim, name in imap.list_folders()}


# -- local maildirs -------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalMessage:
    path: Path
    subject: str
    flags: str  # maildir info letters after ":2,", e.g. "FS"


def maildir_messages(folder: Path) -> list[LocalMessage]:
    messages = []
    for sub in ("new", "cur"):
        for path in sorted((folder / sub).glob("*")):
            with path.open("rb") as fp:
                header = BytesHeaderParser(policy=email.policy.default).parse(fp)
            _, _, flags = path.name.partition(":2,")
            messages.append(LocalMessage(path, str(header["Subject"] or ""), flags))
    return messages


def local_by_subject(folder: Path) -> dict[str, LocalMessage]:
    messages = maildir_messages(folder)
    by_subject = {message.subject: message for message in messages}
    assert len(by_subject) == len(messages), f"duplicate subjects in {folder}: {messages}"
    return by_subject


def make_maildir_folder(folder: Path) -> Path:
    for sub in ("cur", "new", "tmp"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def add_local_message(folder: Path, raw: bytes) -> Path:
    """Deliver into a local maildir the maildir way: write in tmp/, then rename into new/."""
    name = f"{time.time_ns()}.{uuid.uuid4().hex}.commsproxy-test"
    tmp = folder / "tmp" / name
    tmp.write_bytes(raw)
    final = folder / "new" / name
    tmp.rename(final)
    return final


def set_local_flags(message: LocalMessage, flags: str) -> Path:
    """Set a message's maildir flags like a mail reader does: move to cur/ with ``:2,FLAGS``."""
    base = message.path.name.partition(":2,")[0]
    target = message.path.parent.parent / "cur" / f"{base}:2,{''.join(sorted(flags))}"
    message.path.rename(target)
    return target


# -- client configs ------------------------------------------------------------------------


def write_mbsync_config(
    path: Path,
    *,
    port: int,
    user: str,
    password: str,
    security: Security,
    ca_file: Path,
    maildir: Path,
) -> Path:
    """An isync 1.4 config: one channel, every mailbox, both directions, deletions included."""
    # isync 1.4 spells it SSLType (1.5 renamed it TLSType). CertificateFile holds our CA;
    # without the system store, only that CA can vouch for the proxy.
    tls = {
        "plain": "SSLType None",
        "starttls": f"SSLType STARTTLS\nCertificateFile {ca_file}\nSystemCertificates no",
        "imaps": f"SSLType IMAPS\nCertificateFile {ca_file}\nSystemCertificates no",
    }[security]
    path.write_text(
        f"""\
IMAPAccount proxy
Host {CLIENT_HOST}
Port {port}
User {user}
Pass "{password}"
{tls}
Timeout 20

IMAPStore remote
Account proxy

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel everything
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
Sync All
SyncState *
"""
    )
    return path


def write_offlineimap_config(
    path: Path,
    *,
    port: int,
    user: str,
    password: str,
    security: Security,
    ca_file: Path,
    maildir: Path,
    metadata: Path,
) -> Path:
    """An offlineimap3 config: one account, remote IMAP through the proxy, local maildir."""
    tls = {
        "plain": "ssl = no\nstarttls = no",
        "starttls": f"ssl = no\nstarttls = yes\nsslcacertfile = {ca_file}",
        "imaps": f"ssl = yes\nstarttls = no\nsslcacertfile = {ca_file}",
    }[security]
    path.write_text(
        f"""\
[general]
accounts = test
metadata = {metadata}

[Account test]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {maildir}

[Repository remote]
type = IMAP
remotehost = {CLIENT_HOST}
remoteport = {port}
remoteuser = {user}
remotepass = {password}
{tls}
timeout = 20
"""
    )
    return path


def write_muttrc(
    path: Path,
    *,
    port: int,
    user: str,
    password: str,
    security: Security,
    certificate_file: Path,
    idle: bool,
) -> Path:
    """A neomutt config that opens the INBOX through the proxy and never asks a question."""
    scheme = "imaps" if security == "imaps" else "imap"
    tls = {
        "plain": "set ssl_starttls=no\nset ssl_force_tls=no",
        "starttls": "set ssl_starttls=yes\nset ssl_force_tls=yes",
        "imaps": "set ssl_force_tls=yes",
    }[security]
    path.write_text(
        f"""\
# Written by tests/clients for one test; neomutt runs with -n (no system config).
set folder="{scheme}://{user}@{CLIENT_HOST}:{port}/"
set spoolfile="+INBOX"
set imap_pass="{password}"
{tls}
# neomutt (GnuTLS) trusts the CA in this file: no "accept this certificate?" prompt.
set certificate_file="{certificate_file}"
set header_cache=""
set message_cachedir=""
set imap_idle={"yes" if idle else "no"}
# Look for new mail every second; the idle loop wakes up as often.
set mail_check=1
set timeout=1
# Answers to every question neomutt could ask, so nothing blocks the test.
set quit=yes
set delete=yes
set move=no
set confirmappend=no
set record=""
set postponed=""
set wait_key=no
set beep=no
"""
    )
    return path


# -- the two-way sync scenario (mbsync, offlineimap) ----------------------------------------


def check_two_way_sync(
    dovecot: Dovecot, user: str, password: str, maildir: Path, sync: Callable[[], None]
) -> None:
    """Mail flows down, then local and upstream changes both flow on the second sync.

    ``sync`` runs one complete sync of ``maildir`` (INBOX at ``maildir/INBOX``, other mailboxes
    beside it) with the user's mailboxes through the proxy.
    """
    word = token()
    keep, read, doomed = (f"{word} keep", f"{word} read", f"{word} doomed")
    for subject in (keep, read, doomed):
        deliver(dovecot, user, subject)

    sync()
    inbox = maildir / "INBOX"
    local = local_by_subject(inbox)
    assert set(local) == {keep, read, doomed}, f"after the first sync: {local}"

    # Local changes: read one, delete one, add one, and a new mailbox with a message.
    set_local_flags(local[read], local[read].flags + "S")
    local[doomed].path.unlink()
    added = f"{word} written locally"
    add_local_message(inbox, make_message(subject=added, body="local body"))
    project = f"{word} project note"
    add_local_message(
        make_maildir_folder(maildir / "Projects"), make_message(subject=project, body="p")
    )
    # Meanwhile upstream: another client flags one, and new mail comes in.
    upstream_add_flag(dovecot, user, password, keep, "\\Flagged")
    late = f"{word} late arrival"
    deliver(dovecot, user, late)

    sync()
    upstream = upstream_by_subject(upstream_messages(dovecot, user, password))
    assert set(upstream) == {keep, read, added, late}, f"upstream INBOX: {upstream}"
    assert dovecot.message_count(user) == 4, "the deleted message was not expunged upstream"
    assert "\\Seen" in upstream[read].flags, f"\\Seen did not reach upstream: {upstream[read]}"
    assert "\\Seen" not in upstream[keep].flags, upstream[keep]
    assert "Projects" in upstream_folders(dovecot, user, password)
    projects = upstream_messages(dovecot, user, password, "Projects")
    assert [message.subject for message in projects] == [project]

    local = local_by_subject(inbox)
    assert set(local) == {keep, read, added, late}, f"local INBOX after the second sync: {local}"
    assert "F" in local[keep].flags, f"\\Flagged did not reach the maildir: {local[keep]}"
    assert "S" in local[read].flags, local[read]


# -- proxy log ------------------------------------------------------------------------------


def secret_forms(user: str, password: str) -> set[str]:
    """The password as it could appear in a log: raw, and in SASL PLAIN / LOGIN base64."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        password,
        b64(password),
        b64(f"\0{user}\0{password}"),
        b64(f"{user}\0{user}\0{password}"),
    }


def assert_password_not_logged(proxy: ProxyProcess, user: str, password: str) -> None:
    forms = secret_forms(user, password)
    leaked = [line for line in proxy.lines() if any(form in line for form in forms)]
    assert not leaked, f"the proxy logged {user}'s password:\n" + "\n".join(leaked)


def imap_sessions_of(proxy: ProxyProcess, user: str) -> list[str]:
    """IDs (``imap#N``) of the proxy sessions in which ``user`` logged in."""
    pattern = re.compile(rf"\b(imap#\d+): logged in as {re.escape(user)}$")
    return [match.group(1) for line in proxy.lines() if (match := pattern.search(line))]


def assert_imap_sessions_secured(proxy: ProxyProcess, user: str, security: Security) -> None:
    """Check in the proxy's log that the client really used the variant under test."""
    sessions = imap_sessions_of(proxy, user)
    assert sessions, f"no proxy session logged in as {user}:\n{proxy.log_text()}"
    lines = proxy.lines()
    for session in sessions:
        went_tls = any(f"{session}: client link now TLS" in line for line in lines)
        # Implicit TLS is TLS from the first byte, so there is no STARTTLS upgrade to log.
        assert went_tls == (security == "starttls"), (
            f"{session} of {user}: STARTTLS used={went_tls}, but the variant is {security}"
        )


def proxy_imap_port(proxy: ProxyProcess, security: Security) -> int:
    return proxy.imaps_port if security == "imaps" else proxy.imap_port


# -- tmux, for full-screen programs ---------------------------------------------------------

_TMUX_CONF = """\
# Written by tests/clients/helpers.py for one test's private tmux server.
set -g default-terminal screen
set -g status off
# Keep the pane after the program exits, to read its last screen and exit status.
set -g remain-on-exit on
set -g history-limit 2000
"""


class TmuxPane:
    """A program running in a detached tmux session on a private server (``tmux -L``)."""

    def __init__(
        self,
        workdir: Path,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        width: int = 200,
        height: int = 50,
    ) -> None:
        self.tmux = require_program("tmux")
        # A socket name of our own: tests in parallel (or a user's tmux) never collide.
        self.socket = f"commsproxy-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.conf = workdir / "tmux.conf"
        self.command = list(command)
        self.env = dict(env)
        self.size = (width, height)
        self.socket_path: Path | None = None

    def __enter__(self) -> TmuxPane:
        self.conf.write_text(_TMUX_CONF)
        width, height = self.size
        self._tmux(
            "new-session", "-d", "-s", "main", "-x", str(width), "-y", str(height),
            shlex.join(self.command),
        )  # fmt: skip
        try:
            where = self._tmux("display-message", "-p", "#{socket_path}")
            self.socket_path = Path(where.stdout.strip())
        except BaseException:
            self.__exit__(None, None, None)  # __exit__ is not called when __enter__ fails
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._tmux("kill-server", check=False)
        # kill-server leaves the socket file behind in /tmp/tmux-UID.
        if self.socket_path is not None:
            self.socket_path.unlink(missing_ok=True)

    def _tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # The first call starts the server, which hands its environment to the program.
        result = subprocess.run(
            [self.tmux, "-L", self.socket, "-f", str(self.conf), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=10,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "main").stdout

    def send_keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "main", *keys)

    def exit_status(self) -> int | None:
        """The program's exit status once it has exited, else None."""
        out = self._tmux("display-message", "-p", "-t", "main", "#{pane_dead} #{pane_dead_status}")
        dead, _, status = out.stdout.strip().partition(" ")
        return int(status or 0) if dead == "1" else None

    def wait_for(self, pattern: str, *, timeout: float = 10.0, fail_on: Sequence[str] = ()) -> str:
        """Poll the screen until ``pattern`` (a regex) shows; fail early on ``fail_on``."""
        regex = re.compile(pattern)
        failures = [re.compile(failure) for failure in fail_on]
        last = ""

        def probe() -> str | None:
            nonlocal last
            last = self.screen()
            if regex.search(last):
                return last
            for failure in failures:
                if failure.search(last):
                    raise AssertionError(f"screen shows {failure.pattern!r}:\n{last}")
            status = self.exit_status()
            if status is not None:
                raise AssertionError(f"the program exited with status {status}:\n{last}")
            return None

        return wait_until(
            probe, what=lambda: f"{pattern!r} on screen; last screen:\n{last}", timeout=timeout
        )

    def wait_for_exit(self, *, timeout: float = 10.0) -> int:
        status = wait_until(
            lambda: (code := self.exit_status()) is not None and (code,),
            what=lambda: f"the program to exit; screen:\n{self.screen()}",
            timeout=timeout,
        )
        return status[0]
