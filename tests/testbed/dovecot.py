"""A private Dovecot 2.3 instance for tests: IMAP, LMTP and submission on free loopback ports.

Everything (config, maildirs, logs, sockets, state) lives in one fresh directory under /tmp;
the system instance and /etc/dovecot are never touched. See /work/shared/DOVECOT-NOTES.md
for why the config looks the way it does.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.testbed.certs import make_localhost_certs
from tests.testbed.oauth_dovecot import MECHANISMS as OAUTH2_MECHANISMS
from tests.testbed.oauth_dovecot import OAuth2Validation
from tests.testbed.relay_target import RelayTarget

HOST = "127.0.0.1"
PREMADE_USERS = ("alice", "bob", "carol")
# Users written before start, so new_user() needs no reload (see new_user for why).
_DEFAULT_USER_POOL = 200
_DEBIAN_PACKAGES = "dovecot-imapd dovecot-lmtpd dovecot-submissiond"
# dovecot lives in /usr/sbin, which is not on an ordinary user's PATH on Debian.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])
_LOG_TAIL_LINES = 40


READ_ONLY = "Public/ReadOnly"  # public folders below this take no new mail (global ACL)


class DovecotError(RuntimeError):
    """The private Dovecot could not be set up, started or driven."""


@dataclass(frozen=True)
class _MailIdentity:
    """The account mail processes run as (``vmail`` under root, ourselves when rootless)."""

    rootless: bool
    user: str
    uid: int
    gid: int


def _find_binary(name: str) -> str:
    path = shutil.which(name, path=_SEARCH_PATH)
    if path is None:
        raise DovecotError(
            f"{name!r} not found; the test bed needs a real Dovecot 2.3: "
            f"apt-get install {_DEBIAN_PACKAGES}"
        )
    return path


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; all held open together so they are distinct."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def _mail_identity() -> _MailIdentity:
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return _MailIdentity(True, entry.pw_name, entry.pw_uid, entry.pw_gid)
    try:
        entry = pwd.getpwnam("vmail")
    except KeyError:
        # Dovecot refuses uid 0 for mail processes, so root needs an unprivileged account.
        result = subprocess.run(
            ["useradd", "--system", "--no-create-home", "vmail"],
            capture_output=True,
            text=True,
            check=False,
        )
        # Exit 9 means a parallel session created it first, which is fine.
        if result.returncode not in (0, 9):
            raise DovecotError(f"useradd vmail failed: {result.stderr.strip()}") from None
        entry = pwd.getpwnam("vmail")
    return _MailIdentity(False, entry.pw_name, entry.pw_uid, entry.pw_gid)


def _die_with_us() -> list[str]:
    """Command prefix that SIGTERMs the master if this process dies without stop().

    Otherwise a test run killed by a timeout leaves Dovecot running forever. setpriv
    (util-linux) sets the parent-death signal, which survives its exec of dovecot; this
    avoids preexec_fn, which is unsafe once threads (the relay) exist. The signal follows
    the *thread* that started Dovecot, so call start() from a thread that outlives it.
    """
    setpriv = shutil.which("setpriv", path=_SEARCH_PATH)
    return [setpriv, "--pdeathsig", "TERM", "--"] if setpriv else []


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class Dovecot:
    """One private Dovecot; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        *,
        rawlog: bool | None = None,
        mail_debug: bool | None = None,
        start_timeout: float = 20.0,
        user_pool: int = _DEFAULT_USER_POOL,
        oauth2: OAuth2Validation | None = None,
    ) -> None:
        self.dovecot_bin = _find_binary("dovecot")
        self.doveadm_bin = _find_binary("doveadm")
        self.rawlog = _env_flag("RAWLOG") if rawlog is None else rawlog
        self.mail_debug = _env_flag("MAIL_DEBUG") if mail_debug is None else mail_debug
        self.start_timeout = start_timeout
        self.user_pool = max(1, user_pool)
        self.identity = _mail_identity()
        # Off by default: only then are XOAUTH2/OAUTHBEARER offered and bearer tokens checked.
        self.oauth2 = oauth2

        self.root = Path(tempfile.mkdtemp(dir="/tmp", prefix="commsproxy-dovecot-"))
        # mkdtemp makes 0700; dovecot, dovenull and vmail must all traverse it.
        self.root.chmod(0o755)
        self.instance_name = self.root.name
        self.conf_file = self.root / "dovecot.conf"
        self.log_file = self.root / "dovecot.log"
        self.users_file = self.root / "users"
        self.home_dir = self.root / "home"
        self.public_dir = self.root / "public"
        self.rawlog_dir = self.root / "rawlog"
        self.relay_dir = self.root / "relay"
        self._master_out = self.root / "master.out"

        self.host = HOST
        (
            self.imap_port,
            self.imaps_port,
            self.lmtp_port,
            self.submission_port,
            self.submission_relay_port,
        ) = _free_ports(5)
        self.submission_relay_host = HOST

        tls = make_localhost_certs(self.root / "tls")
        self.ca_file: Path = tls.ca_file
        self.cert_file: Path = tls.cert_file
        self.key_file: Path = tls.key_file

        self.users: dict[str, str] = {}
        self._users_lock = threading.Lock()
        self._user_seq = 0
        self._spare_users: list[str] = []
        self.relay = RelayTarget(
            self.relay_dir,
            host=self.submission_relay_host,
            port=self.submission_relay_port,
            lmtp_host=HOST,
            lmtp_port=self.lmtp_port,
            is_local=self._is_local,
        )
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Write the config, start Dovecot and the relay, return once IMAP greets us."""
        try:
            self._prepare_tree()
            self.conf_file.write_text(self._render_config())
            self.relay.start()
            self.start_server()
        except BaseException:
            self.stop()
            raise

    def start_server(self) -> None:
        """Start the Dovecot master on the written config; return once IMAP greets us.

        Call it from a thread that outlives the server (see ``_die_with_us``)."""
        with self._master_out.open("ab") as out:
            # -F keeps the master in the foreground, so we hold its pid; a new session
            # lets stop() find and wait for all its children by process group.
            self._proc = subprocess.Popen(
                [*_die_with_us(), self.dovecot_bin, "-F", "-c", str(self.conf_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready()

    def stop_server(self) -> None:
        """Stop the whole Dovecot (master and every process, so every connection ends), keeping
        its mail, config and ports; ``start_server`` brings it back as it was.

        Every process gets SIGTERM at once, as systemd stops a service: told by the master
        alone, an imap process in IDLE says BYE only some 10 s later."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # The master logs "Killed with signal 15": harmless.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _reap_group(proc.pid)

    def restart(self) -> None:
        """A full restart on the same ports: what clients see when the server is upgraded."""
        self.stop_server()
        self.start_server()

    def stop(self) -> None:
        """Stop Dovecot and the relay; remove the directory unless KEEP_DOVECOT=1."""
        self.stop_server()
        self.relay.stop()
        if not _env_flag("KEEP_DOVECOT"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- users -----------------------------------------------------------------------------

    def new_user(self) -> tuple[str, str]:
        """A user no one else has been given, able to log in at once.

        Dovecot's passwd-file driver re-stats the file at most once per wall-clock second
        (``last_sync_time == ioloop_time``), so a user appended just now can stay unknown
        for up to a second. Users therefore come from a pool written before start; only
        when it runs dry is a batch appended, and then we wait until auth sees it.
        """
        with self._users_lock:
            if not self._spare_users:
                self._provision(self.user_pool)
                self._wait_until_known(self._spare_users[-1])
            name = self._spare_users.pop(0)
        return name, self.users[name]

    def password(self, user: str) -> str:
        return self.users[user]

    # -- driving it ------------------------------------------------------------------------

    def deliver(self, user: str, message: bytes, *, sender: str = "sender@example.org") -> None:
        """Deliver ``message`` to ``user``'s INBOX through LMTP, as an MTA would."""
        rcpt = user if "@" in user else f"{user}@localhost"
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=30) as lmtp:
            lmtp.sendmail(sender, [rcpt], message)

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c CONF ARGS...`` and return its stdout."""
        result = subprocess.run(
            [self.doveadm_bin, "-c", str(self.conf_file), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode != 0:
            raise DovecotError(
                f"doveadm {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def message_count(self, user: str, mailbox: str = "INBOX") -> int:
        out = self.doveadm("mailbox", "status", "-u", user, "messages", mailbox)
        match = re.search(r"messages=(\d+)", out)
        if match is None:
            raise DovecotError(f"unexpected doveadm mailbox status output: {out!r}")
        return int(match.group(1))

    def kick(self, user: str) -> None:
        """Disconnect all of ``user``'s sessions, like an upstream that goes away."""
        self.doveadm("kick", user)

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def relay_captured(self) -> list[bytes]:
        """Messages the submission service relayed out, oldest first."""
        return [message.content for message in self.relay.captured()]

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts exactly this instance's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    # -- internals -------------------------------------------------------------------------

    def _is_local(self, address: str) -> bool:
        # Mirrors auth_username_format=%Ln: the domain is ignored, case folded.
        return address.partition("@")[0].lower() in self.users

    def _mail_owned_dirs(self) -> list[Path]:
        return [self.home_dir, self.public_dir, self.root / "shared-dict", self.rawlog_dir]

    def _prepare_tree(self) -> None:
        # The public root stays bare: cur/new/tmp there would make "Public" selectable.
        for path in self._mail_owned_dirs():
            path.mkdir(exist_ok=True)
            self._chown_to_mail(path)
        (self.root / "global-acl").write_text(
            # Patterns match the virtual name, prefix included; "Public" itself needs the
            # rights too, or nobody can create top-level public folders. Folders under
            # Public/ReadOnly can be created and read but not written: a team folder the
            # user lacks rights on.
            f"Public anyone lrwstipekxa\nPublic/* anyone lrwstipekxa\n{READ_ONLY}/* -anyone iwte\n"
        )
        if self.oauth2 is not None:
            self.oauth2.write_files(self.root / "oauth2")
        with self._users_lock:
            for name in PREMADE_USERS:
                self._add_user(name, f"{name}-secret", write=False)
            self._provision(self.user_pool)

    def _chown_to_mail(self, path: Path) -> None:
        if not self.identity.rootless:
            os.chown(path, self.identity.uid, self.identity.gid)

    def _provision(self, count: int) -> None:
        """Append ``count`` fresh pool users to the passwd-file."""
        for _ in range(count):
            self._user_seq += 1
            name = f"user{self._user_seq:04d}"
            self._spare_users.append(name)
            self._add_user(name, f"{name}-secret", write=False)
        self._write_users_file()

    def _add_user(self, name: str, password: str, *, write: bool = True) -> None:
        if self.rawlog:
            # Dovecot silently skips the rawlog when the per-user dir does not exist.
            user_rawlog = self.rawlog_dir / name
            user_rawlog.mkdir(exist_ok=True)
            self._chown_to_mail(user_rawlog)
        self.users[name] = password
        if write:
            self._write_users_file()

    def _write_users_file(self) -> None:
        lines = "".join(f"{user}:{{PLAIN}}{pw}::::::\n" for user, pw in self.users.items())
        # Replace atomically so the auth process never reads a half-written file.
        tmp = self.users_file.with_name(".users.tmp")
        tmp.write_text(lines)
        tmp.chmod(0o644)  # read by the auth process, which runs as the dovecot user
        os.replace(tmp, self.users_file)

    def _wait_until_known(self, name: str) -> None:
        """Block until the auth process has reloaded the passwd-file (about a second)."""
        deadline = time.monotonic() + 5
        command = [self.doveadm_bin, "-c", str(self.conf_file), "auth", "test", name]
        while True:
            probe = subprocess.run(
                [*command, self.users[name]], capture_output=True, timeout=30, check=False
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise DovecotError(f"auth never learned about {name}: {probe.stdout!r}")
            time.sleep(0.05)  # reload happens on the next wall-clock second; poll for it

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise self._startup_error(f"dovecot exited with status {self._proc.returncode}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._startup_error(
                    f"no IMAP greeting on {self.host}:{self.imap_port} within "
                    f"{self.start_timeout:g}s (last error: {last_error})"
                )
            try:
                if self._read_greeting(remaining).startswith(b"* OK"):
                    return
            except OSError as exc:
                last_error = exc
            # Not listening yet: poll again shortly, and notice at once if the master dies.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=min(0.05, max(remaining, 0.0)))

    def _read_greeting(self, timeout: float) -> bytes:
        with socket.create_connection((self.host, self.imap_port), timeout=timeout) as sock:
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data

    def _startup_error(self, reason: str) -> DovecotError:
        parts = [f"private Dovecot in {self.root} failed to start: {reason}"]
        with contextlib.suppress(FileNotFoundError):
            master_out = self._master_out.read_text(errors="replace").strip()
            if master_out:
                parts.append(f"--- master output ---\n{master_out}")
        tail = self.log_text().splitlines()[-_LOG_TAIL_LINES:]
        if tail:
            parts.append("--- tail of dovecot.log ---\n" + "\n".join(tail))
        return DovecotError("\n".join(parts))

    def _render_config(self) -> str:
        return _render_config(self)


def _live_group_members(pgid: int) -> list[int]:
    """Non-zombie processes in process group ``pgid`` (zombies may never be reaped in CI)."""
    members = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_file.read_text()
        except OSError:
            continue  # the process exited while we looked
        # Fields after the parenthesised command name: state ppid pgrp ...
        state, _ppid, pgrp = stat.rpartition(")")[2].split()[:3]
        if int(pgrp) == pgid and state != "Z":
            members.append(int(stat_file.parent.name))
    return members


def _reap_group(pgid: int) -> None:
    """Wait for every process of Dovecot's session: children outlive the master briefly."""
    deadline = time.monotonic() + 10
    while _live_group_members(pgid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            return
        time.sleep(0.02)  # teardown polling only; no test waits on this


def _render_config(dc: Dovecot) -> str:
    ident = dc.identity
    root = dc.root
    if ident.rootless:
        # An unprivileged master cannot switch users or chroot: everything runs as us.
        privileges = f"""\
default_internal_user = {ident.user}
default_internal_group = {_group_name(ident.gid)}
default_login_user = {ident.user}
"""
        chroot = "  chroot =\n"
    else:
        privileges = f"""\
mail_uid = {ident.uid}
mail_gid = {ident.gid}
"""
        chroot = ""  # keep Dovecot's defaults (e.g. login processes chroot to base_dir/login)
    debug = "mail_debug = yes\nauth_debug = yes\n" if dc.mail_debug else ""
    oauth_mechanisms = oauth_passdb = password_mechanisms = ""
    if dc.oauth2 is not None:
        oauth_mechanisms = f" {OAUTH2_MECHANISMS}"
        password_mechanisms = "  mechanisms = plain login\n"
        oauth_passdb = dc.oauth2.passdb_config(root / "oauth2" / "dovecot-oauth2.conf.ext")
    rawlog = ""
    if dc.rawlog:
        rawlog = f"""\
protocol imap {{
  rawlog_dir = {dc.rawlog_dir}/%n
}}
protocol submission {{
  rawlog_dir = {dc.rawlog_dir}/%n
}}
"""
    return f"""\
# Private test instance written by tests/testbed/dovecot.py; not the system config.
instance_name = {dc.instance_name}
base_dir = {root}/run
state_dir = {root}/state
protocols = imap lmtp submission
listen = {dc.host}
hostname = localhost
postmaster_address = postmaster@localhost
log_path = {dc.log_file}
{privileges}
# Mail processes must not be root, and system uids are below the default 500.
first_valid_uid = {ident.uid}
last_valid_uid = {ident.uid}
first_valid_gid = {ident.gid}
last_valid_gid = {ident.gid}

ssl = yes
ssl_cert = <{dc.cert_file}
ssl_key = <{dc.key_file}

auth_mechanisms = plain login{oauth_mechanisms}
disable_plaintext_auth = no
auth_username_format = %Ln
# 0 is allowed; in 2.3.19 a failure is then answered on auth's next 0.5 s tick, not after 2 s.
auth_failure_delay = 0
auth_verbose = yes
# Without this, one failed login from 127.0.0.1 makes the next logins from any test wait
# 2, 4, 8... s (anvil's per-IP auth penalty); mode 0 removes the socket auth asks.
service anvil {{
{chroot}  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = passwd-file
{password_mechanisms}  args = scheme=PLAIN username_format=%n {dc.users_file}
}}
{oauth_passdb}userdb {{
  driver = passwd-file
  args = username_format=%n {dc.users_file}
  default_fields = uid={ident.uid} gid={ident.gid} home={dc.home_dir}/%n
}}

mail_location = maildir:~/Maildir
# Parallel clients through one proxy IP exceed the default of 10.
mail_max_userip_connections = 100
# Test data: durability buys nothing and costs time.
mail_fsync = never
mail_plugins = $mail_plugins acl
protocol imap {{
  mail_plugins = $mail_plugins imap_acl
}}
plugin {{
  acl = vfile:{root}/global-acl
  acl_anyone = allow
  acl_shared_dict = file:{root}/shared-dict/shared-mailboxes.db
}}

namespace inbox {{
  type = private
  separator = /
  prefix =
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
    auto = subscribe
  }}
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
  mailbox Trash {{
    special_use = \\Trash
    auto = subscribe
  }}
  mailbox Junk {{
    special_use = \\Junk
    auto = subscribe
  }}
  mailbox Archive {{
    special_use = \\Archive
  }}
}}
namespace public {{
  type = public
  separator = /
  prefix = Public/
  location = maildir:{dc.public_dir}
  # Subscriptions go to each user's private namespace, not the shared public root.
  subscriptions = no
}}
namespace shared {{
  type = shared
  separator = /
  prefix = Shared/%%n/
  location = maildir:%%h/Maildir:INDEXPVT=~/Maildir/shared/%%n
  subscriptions = no
  list = children
}}

service imap-login {{
{chroot}  inet_listener imap {{
    address = {dc.host}
    port = {dc.imap_port}
  }}
  inet_listener imaps {{
    address = {dc.host}
    port = {dc.imaps_port}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = {dc.host}
    port = {dc.lmtp_port}
  }}
}}
service submission-login {{
{chroot}  inet_listener submission {{
    address = {dc.host}
    port = {dc.submission_port}
  }}
}}
service imap-urlauth-login {{
{chroot}}}
# Only relevant rootless: these also chroot by default (anvil, ipc into base_dir/empty).
service ipc {{
{chroot}}}
service old-stats {{
{chroot}}}
service aggregator {{
{chroot}}}
# Submission relays only over SMTP, hence the relay target in front of LMTP.
submission_relay_host = {dc.submission_relay_host}
submission_relay_port = {dc.submission_relay_port}
{rawlog}{debug}"""


def _group_name(gid: int) -> str:
    return grp.getgrgid(gid).gr_name
