"""A triaging commsproxy in front of the test Dovecot, and a census of where mail is.

Triage needs a config (the login, its password_command, the batches); tests write one with
``write_triage_config`` and start the proxy with ``triage_proxy``. ``census`` counts each
Message-ID in every mailbox of a user, which is how tests prove nothing was lost or duplicated.
"""

from __future__ import annotations

import re
import shlex
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.proxy import ProxyProcess

MAILBOXES = ("INBOX", "Later", "Later/Bulk")
_MESSAGE_ID = re.compile(r"^message-id:\s*(<[^>]*>)", re.IGNORECASE | re.MULTILINE)


def write_triage_config(
    dovecot: Dovecot,
    user: str,
    password: str,
    directory: Path,
    *,
    extra: str = "",
    batches: str | None = None,
    upstream: str | None = None,
    tables: str = "",
) -> Path:
    """A config for ``user`` with VIP ``boss@example.com``; default batches unless given;
    the local page off unless ``tables`` has a ``[web]`` table.

    ``upstream`` replaces the test Dovecot as the login's server (e.g. a closed port).
    """
    directory.mkdir(parents=True, exist_ok=True)
    if "[web]" not in tables:
        # The local page's fixed port would be shared by every proxy a test starts at once.
        tables += "\n[web]\nenabled = false\n"
    config = directory / "config.toml"
    config.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{directory / "state"}"

[[login]]
username = "{user}"
password_command = {_toml(f"printf %s {shlex.quote(password)}")}
upstream_imap = "{upstream or f"imap://127.0.0.1:{dovecot.imap_port}"}"

[triage]
vip = ["boss@example.com", "*@vip.example"]
gate_timeout = 5
{extra}
{batches or ""}
{tables}
""",
        encoding="utf-8",
    )
    return config


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def triage_proxy(config: Path, *extra: str) -> ProxyProcess:
    """Start a triaging proxy; returns once it listens and triage watches INBOX."""
    process = ProxyProcess(["--config", str(config), *extra]).start()
    if not process.wait_for_log(r"watching INBOX|dry run", 20):
        process.stop()
        raise RuntimeError("triage did not start:\n" + process.log_text())
    return process


def census(dovecot: Dovecot, user: str, mailboxes: tuple[str, ...] = MAILBOXES) -> Counter[str]:
    """How many copies of each Message-ID the user's mailboxes hold (mailbox:id keys too)."""
    counts: Counter[str] = Counter()
    for mailbox in mailboxes:
        try:
            text = dovecot.doveadm("fetch", "-u", user, "hdr", "mailbox", mailbox)
        except DovecotError:  # the mailbox does not exist (yet)
            continue
        for mid in _MESSAGE_ID.findall(text):
            counts[mid] += 1
    return counts


def where(dovecot: Dovecot, user: str, mailboxes: tuple[str, ...] = MAILBOXES) -> dict[str, str]:
    """Message-ID -> the mailbox it is in (the last one found, if it is in several)."""
    found: dict[str, str] = {}
    for mailbox in mailboxes:
        try:
            text = dovecot.doveadm("fetch", "-u", user, "hdr", "mailbox", mailbox)
        except DovecotError:
            continue
        for mid in _MESSAGE_ID.findall(text):
            found[mid] = mailbox
    return found


def quiet_batches(*, later_reappend: bool = False) -> str:
    """``later`` (normal) and ``bulk`` batches released daily 12 hours from now (UTC).

    No scheduled release can fall inside a test, however the wall clock stands; a test that
    wants a scheduled release says so by recording an old one in the state store.
    """
    at = (datetime.now(UTC) + timedelta(hours=12)).strftime("%H:%M")
    reappend = "true" if later_reappend else "false"
    return f"""
[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal"]
release = ["{at}"]
days = "daily"
timezone = "UTC"
reappend = {reappend}

[[batch]]
name = "bulk"
mailbox = "Later/Bulk"
labels = ["bulk"]
release = ["{at}"]
days = "daily"
timezone = "UTC"
"""


def wait_until(predicate: Callable[[], object], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true; False when ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def fetch_fields(dovecot: Dovecot, user: str, mailbox: str, fields: str) -> list[dict[str, str]]:
    """``doveadm fetch`` of ``fields`` (e.g. ``"uid flags hdr.message-id"``) per message."""
    try:
        text = dovecot.doveadm("fetch", "-u", user, fields, "mailbox", mailbox)
    except DovecotError:  # the mailbox does not exist (yet)
        return []
    records: list[dict[str, str]] = []
    for chunk in text.split("\f"):
        record: dict[str, str] = {}
        for line in chunk.strip("\n").splitlines():
            name, sep, value = line.partition(":")
            if sep:
                record[name.strip()] = value.strip()
        if record:
            records.append(record)
    return records


def flags_by_id(
    dovecot: Dovecot, user: str, mailboxes: tuple[str, ...] = MAILBOXES
) -> dict[str, tuple[str, frozenset[str]]]:
    """Message-ID -> (mailbox, its flags without ``\\Recent``)."""
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for mailbox in mailboxes:
        for record in fetch_fields(dovecot, user, mailbox, "flags hdr.message-id"):
            flags = frozenset(record.get("flags", "").split()) - {"\\Recent"}
            found[record.get("hdr.message-id", "")] = (mailbox, flags)
    return found


class Password:
    """``Credentials`` for an in-process engine: the test user's, always the same."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password

    async def __call__(self) -> tuple[str, str] | None:
        return self.user, self.password

    def refused(self) -> None:
        raise AssertionError("the test user's password was refused")

    async def check(self, worker: object) -> None:
        """A password login never pauses (the engine asks each tick since OAuth2 logins)."""
