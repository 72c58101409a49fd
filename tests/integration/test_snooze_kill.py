"""SIGKILL of ``commsproxy run`` while it brings snoozed mail back: exactly one copy in INBOX.

The user snoozes a few messages into ``Snoozed/Tomorrow`` while run is down; run notices them
at its start and records them; with run down again, their due time is moved into the past in
the state store, as a laptop waking the next morning would find it. Then run is started again
and again, each time behind a TCP hop (tests/testbed/faulthop.py) armed to cut at one step of a
return, and killed with SIGKILL the moment the hop cuts: just after the copy's APPEND (the copy
is there, the original too, the record says "returning"), just before and just after the
original's ``UID EXPUNGE`` (each run redoes what the one before left); and once after a delay
drawn from a seeded generator. A last run finishes the work. Then every message is in INBOX
exactly once (unread, ``$Unsnoozed``) and none is left in the snooze box.
"""

from __future__ import annotations

import asyncio
import imaplib
import os
import random
import signal
import sqlite3
import uuid
from pathlib import Path

from commsproxy.triage.state_store import FILENAME, StateStore
from tests.integration.test_triage_quiet import mail, mid_of
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop, Mode
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import (
    fetch_fields,
    quiet_batches,
    triage_proxy,
    wait_until,
    write_triage_config,
)

SEED = int(os.environ.get("COMMSPROXY_FAULTS_SEED", "20261207"))
BOX = "Snoozed/Tomorrow"
MESSAGES = 6
CUTS: tuple[tuple[bytes, Mode], ...] = (
    (rb'^\S+ APPEND "INBOX" ', "after"),  # the copy is there, so is the original
    (rb"^\S+ UID EXPUNGE ", "before"),  # ... the original marked \Deleted
    (rb"^\S+ UID EXPUNGE ", "after"),  # the original gone, the record still "returning"
)


def snooze(dovecot: Dovecot, user: str, password: str, messages: list[bytes]) -> None:
    """What a mail program does: the (read) messages are moved from INBOX into the box."""
    imap = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
    imap.login(user, password)
    imap.create(f'"{BOX}"')
    for message in messages:
        typ, data = imap.append("INBOX", "(\\Seen $Triaged $NotHeld)", None, message)
        assert typ == "OK", data
    imap.select("INBOX")
    typ, data = imap.uid("SEARCH", "ALL")
    assert typ == "OK", data
    typ, data = imap.uid("MOVE", data[0].decode().replace(" ", ","), f'"{BOX}"')
    assert typ == "OK", data
    imap.logout()


def pending(state: Path, user: str) -> int:
    with StateStore.open(state) as store:
        return len(store.snoozed(user))


def due_now(state: Path) -> None:
    """The morning came while run was down: every snoozed message is due."""
    with sqlite3.connect(state / FILENAME) as db:
        db.execute("UPDATE snoozes SET due = '2000-01-01T00:00:00.000000+00:00'")
    db.close()


def copies(dovecot: Dovecot, user: str, mailbox: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for record in fetch_fields(dovecot, user, mailbox, "flags hdr.message-id"):
        out.setdefault(record.get("hdr.message-id", ""), []).append(record.get("flags", ""))
    return out


async def kill_at_cut(config: Path, hop: FaultHop, cut: tuple[bytes, Mode] | float) -> str:
    """Start run; SIGKILL it as the hop cuts (or after a delay); says what happened."""
    if isinstance(cut, tuple):
        hop.arm(*cut)
    before = hop.cuts
    proxy = await asyncio.to_thread(ProxyProcess(["--config", str(config)]).start)
    try:
        if isinstance(cut, tuple):
            done = await asyncio.to_thread(wait_until, lambda: hop.cuts > before, 20)
            what = f"cut {cut[1]} {cut[0]!r}" if done else f"no cut at {cut[0]!r}"
        else:
            await asyncio.sleep(cut)  # a point in time, not a wait for a schedule
            what = f"after {cut:.2f} s"
    finally:
        proxy.signal(signal.SIGKILL)
        await asyncio.to_thread(proxy.wait)
        hop.arm(rb"^$", "before", 0)  # disarmed
    return what


async def test_sigkill_while_snoozed_mail_comes_back(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    async with FaultHop("127.0.0.1", dovecot.imap_port) as hop:
        config = write_triage_config(
            dovecot, user, password, tmp_path, batches=quiet_batches(),
            upstream=f"imap://127.0.0.1:{hop.port}",
        )  # fmt: skip
        state = tmp_path / "state"
        sent = [mail(f"snoozed {n} {uuid.uuid4().hex[:6]}", sender="boss@example.com")
                for n in range(MESSAGES)]  # fmt: skip
        mids = [mid_of(message) for message in sent]
        # Snoozed while run was down (the box made by an earlier run): noticed at its start.
        await asyncio.to_thread(snooze, dovecot, user, password, sent)
        proxy = await asyncio.to_thread(triage_proxy, config)
        try:
            noticed = await asyncio.to_thread(
                wait_until, lambda: pending(state, user) == MESSAGES, 30
            )
            assert noticed, proxy.log_text()
        finally:
            proxy.signal(signal.SIGKILL)
            await asyncio.to_thread(proxy.wait)
        due_now(state)

        rng = random.Random(SEED)
        rounds: list[tuple[bytes, Mode] | float] = [*CUTS, rng.uniform(0.0, 1.0)]
        said = [f"seed {SEED}"]
        for cut in rounds:
            said.append(await kill_at_cut(config, hop, cut))
            said.append(
                f"  {pending(state, user)} pending, INBOX {len(copies(dovecot, user, 'INBOX'))}"
            )

        proxy = await asyncio.to_thread(triage_proxy, config)
        try:
            finished = await asyncio.to_thread(wait_until, lambda: pending(state, user) == 0, 30)
            assert finished, "\n".join(said) + "\n" + proxy.log_text()
        finally:
            await asyncio.to_thread(proxy.stop)

    inbox, left = copies(dovecot, user, "INBOX"), copies(dovecot, user, BOX)
    report = "\n".join(said)
    assert left == {}, report
    for mid in mids:
        assert len(inbox.get(mid, [])) == 1, f"{mid}: {inbox.get(mid)}\n{report}"
        flags = inbox[mid][0].split()
        assert "$Unsnoozed" in flags, report
        assert "\\Seen" not in flags, report
    assert len(inbox) == MESSAGES, report
    assert sum(line.startswith("cut ") for line in said) == len(CUTS), report  # all fell
