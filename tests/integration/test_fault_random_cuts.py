"""A link between the proxy and Dovecot that breaks at random points, through every kind of work.

``commsproxy run`` reaches the server only through a fault hop (tests/testbed/faulthop.py) in
random mode: each new connection, with a seeded chance, is cut after a random number of bytes,
wherever that falls (a command, a literal, a server answer, an IDLE), and a connection that
lives on is cut later the same way. Triage's connections and
the mail program's relayed ones both go through it. Three phases run under the cuts:

1. triage and filing: mail arrives (newsletters, thread replies, customer mail, a few large
   messages); everything is decided, held, and the customer mail filed into its account folder;
2. a release of everything, asked of the running service;
3. a mail program fetches every message in INBOX through the proxy (``UID FETCH BODY.PEEK[]``):
   each fetch either completes with exactly the server's bytes (compared with a direct fetch
   from Dovecot) or fails cleanly (the connection ends, no hang), and fetching again works.

Triage retries with a short backoff (``retry_max = 1``). The phases go on until at least 50
cuts happened in all (200 with ``COMMSPROXY_FAULTS_LONG=1``). At the end, with the hop quiet,
the census of tests/testbed/census.py: every message once, nothing held, released mail marked,
digests one per release, the account folder with one copy of each filed message.

The seed is ``COMMSPROXY_FAULTS_SEED`` (default below); a failure prints it and the hop's
journal of cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from commsproxy.imap.names import FILED
from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage import newsletter, thread_reply
from tests.integration.test_triage_health import Login
from tests.mailfactory import render
from tests.testbed.census import Census, assert_sound
from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.faulthop import FaultHop
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import wait_until

HOLDS = ("Later", "Later/Bulk")
LONG = os.environ.get("COMMSPROXY_FAULTS_LONG", "") not in ("", "0")
SEED = int(os.environ.get("COMMSPROXY_FAULTS_SEED", "7"))
CUTS = 200 if LONG else 50  # in all
TRIAGE_CUTS, RELEASE_CUTS = (40, 20) if LONG else (6, 3)  # at least, while triage and release
MESSAGES, WAVES = (60, 15) if LONG else (24, 6)  # mail per wave: MESSAGES // WAVES


@contextmanager
def hop_thread(port: int) -> Iterator[tuple[FaultHop, asyncio.AbstractEventLoop]]:
    """A fault hop on its own event loop in a thread, so the test itself stays synchronous."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    hop = FaultHop("127.0.0.1", port)
    asyncio.run_coroutine_threadsafe(hop.start(), loop).result(10)
    try:
        yield hop, loop
    finally:
        asyncio.run_coroutine_threadsafe(hop.close(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def on_loop(loop: asyncio.AbstractEventLoop, call: Any, *args: Any) -> None:
    done: Future[None] = Future()

    def run() -> None:
        call(*args)
        done.set_result(None)

    loop.call_soon_threadsafe(run)
    done.result(10)


def accounts(name: str) -> str:
    return f"""
[accounts]
internal_domains = ["team.example"]

[accounts.acme]
name = "{name}"
domains = ["acme.example"]
"""


def customer(mid: str) -> bytes:
    headers = {
        "From": "Customer <ceo@acme.example>",
        "To": "me@team.example",
        "Subject": "Question about our order",
        "Message-ID": mid,
    }
    return render(headers, "Could you tell us when the order ships? Thanks.")


def large(mid: str, rng: random.Random) -> bytes:
    """A newsletter of some 40 KB: a fetch of it spans many reads, so cuts land inside."""
    lines = "".join(
        f"Item {i}: {rng.getrandbits(64):016x} news and events.\r\n" for i in range(1000)
    )
    return newsletter(mid).replace(b"This week:", lines.encode() + b"This week:")


def held(dovecot: Dovecot, user: str) -> int:
    total = 0
    for box in HOLDS:
        with contextlib.suppress(DovecotError):
            total += dovecot.message_count(user, box)
    return total


def untriaged(dovecot: Dovecot, user: str) -> bool:
    return bool(
        dovecot.doveadm(
            "search", "-u", user, "mailbox", "INBOX", "NOT", "KEYWORD", "$Triaged",
        ).strip()
    )  # fmt: skip


def filed(dovecot: Dovecot, user: str, mids: set[str]) -> bool:
    census = Census.take(dovecot, user)
    return all(any(FILED in c.flags for c in census.copies.get(mid, [])) for mid in mids)


def released(dovecot: Dovecot, login: Login) -> bool:
    with StateStore.open(login.state) as store:
        pending = store.pending_release_requests()
    return not pending and held(dovecot, login.user) == 0


def release_everything(login: Login) -> int:
    """Ask the running service to release everything and wait until it has; returns how often
    the request was marked done with mail still held (and had to be asked again).

    That happens when a cut fails one batch's release of the request: the service marks the
    request done anyway, and the batches after it stay held until their schedule.
    test_a_release_request_cut_short_is_carried_out_in_full pins it; here it is counted and
    the release asked again, so the rest of this test still runs.
    """
    stranded = 0
    while True:
        with StateStore.open(login.state) as store:
            store.request_release(None, None, datetime.now(UTC))
        assert wait_until(lambda: released(login.dovecot, login) or stranded_now(login), 120)
        if released(login.dovecot, login):
            return stranded
        stranded += 1
        assert stranded < 5, "release requests keep ending with mail held"


def stranded_now(login: Login) -> bool:
    with StateStore.open(login.state) as store:
        busy = store.pending_release_requests() or store.unfinished_releases(login.user)
    return not busy and held(login.dovecot, login.user) > 0


def direct_bodies(dovecot: Dovecot, user: str, password: str) -> dict[int, bytes]:
    """UID -> the whole message, as Dovecot itself serves it (no proxy, no hop)."""
    conn = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
    try:
        conn.login(user, password)
        conn.select("INBOX", readonly=True)
        found = {}
        typ, data = conn.uid("FETCH", "1:*", "(UID BODY.PEEK[])")
        assert typ == "OK", data
        for item in data:
            if isinstance(item, tuple):
                uid = int(item[0].split(b"UID ")[1].split()[0])
                found[uid] = item[1]
        return found
    finally:
        conn.logout()


class Fetcher:
    """A mail program fetching INBOX through the proxy, again after every broken connection."""

    def __init__(self, proxy: ProxyProcess, user: str, password: str) -> None:
        self.proxy, self.user, self.password = proxy, user, password
        self.failures: list[str] = []  # clean failures: the connection ended, said how
        self.sessions = 0

    def fetch_all(self, expected: dict[int, bytes], rng: random.Random) -> set[int]:
        """One session: fetch the messages in a random order; returns the UIDs fetched right.

        A fetch that completes must give the server's bytes; one that fails must fail as a
        closed connection (imaplib's abort, EOF, a reset), within the socket's time limit."""
        self.sessions += 1
        right: set[int] = set()
        uids = sorted(expected)
        rng.shuffle(uids)
        conn: imaplib.IMAP4 | None = None
        try:
            conn = imaplib.IMAP4("127.0.0.1", self.proxy.imap_port, timeout=20)
            conn.login(self.user, self.password)
            conn.select("INBOX", readonly=True)
            for uid in uids:
                typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
                assert typ == "OK", (uid, typ, data)
                bodies = [item[1] for item in data if isinstance(item, tuple)]
                assert bodies == [expected[uid]], f"uid {uid}: wrong bytes through the proxy"
                right.add(uid)
            conn.logout()
        except (imaplib.IMAP4.error, EOFError, ConnectionError) as err:  # abort: a BYE, EOF
            self.failures.append(f"session {self.sessions}: {type(err).__name__}: {err}")
        except OSError as err:  # a socket timeout is a hang, not a clean failure
            raise AssertionError(f"session {self.sessions}: {err!r}") from err
        finally:
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.shutdown()  # closes the socket (after LOGOUT, or after a cut)
        return right


def test_random_cuts_during_triage_filing_release_and_a_client_fetch(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    folder_name = f"Acme {uuid.uuid4().hex[:8]}"
    folder = f"Public/Accounts/{folder_name}"
    with hop_thread(dovecot.imap_port) as (hop, loop):
        login = Login(
            dovecot,
            tmp_path,
            upstream=f"imap://127.0.0.1:{hop.port}",
            batches=None,
        )
        # No notice while triage fails between cuts: it is not what this test looks at. A
        # small body prefix: triage's FETCH of large mail stays within a few cuts' reach.
        text = login.config.read_text(encoding="utf-8").replace(
            "notice_after = ", 'body_prefix = "4K"\nnotice_after = 3600\n# was: '
        )
        login.config.write_text(text + accounts(folder_name), encoding="utf-8")
        user = login.user
        journal = hop.journal
        context = lambda: f"seed {SEED}\n" + "\n".join(journal)  # noqa: E731

        on_loop(loop, hop.cut_randomly, random.Random(rng.random()), 0.5, 10000)
        proxy = login.start()
        try:
            assert proxy.wait_for_log("watching INBOX", 60), context() + proxy.log_text()

            # 1 and 2, in waves until each had its share of cuts: mail arrives and is triaged
            # and filed, then a release of everything is asked of the running service.
            delivered: list[str] = []
            customers: set[str] = set()
            triage_cuts = release_cuts = waves = stranded = 0
            while triage_cuts < TRIAGE_CUTS or release_cuts < RELEASE_CUTS:
                waves += 1
                assert waves <= 4 * WAVES, context()
                before = hop.cuts
                for _ in range(MESSAGES // WAVES):
                    mid = f"<cuts-{len(delivered)}-{uuid.uuid4().hex[:8]}@test.example>"
                    kind = rng.choice(("news", "reply", "customer", "customer", "large"))
                    if kind == "customer":
                        customers.add(mid)
                        data = customer(mid)
                    elif kind == "large":
                        data = large(mid, rng)
                    else:
                        data = newsletter(mid) if kind == "news" else thread_reply(mid)
                    dovecot.deliver(user, data)
                    delivered.append(mid)
                assert wait_until(
                    lambda: not untriaged(dovecot, user) and filed(dovecot, user, customers),
                    120,
                ), context() + "\n" + proxy.log_text()
                triage_cuts += hop.cuts - before
                before = hop.cuts
                stranded += release_everything(login)
                release_cuts += hop.cuts - before

            # 3. A mail program fetches everything through the proxy, until each message came
            # right at least once and the cuts reached their number.
            idle_cuts = hop.cuts - triage_cuts - release_cuts  # between the waves
            expected = direct_bodies(dovecot, user, login.password)
            fetcher = Fetcher(proxy, user, login.password)
            on_loop(loop, hop.cut_randomly, random.Random(rng.random()), 0.9, 60_000)
            right: set[int] = set()
            deadline = time.monotonic() + (600 if LONG else 120)
            while right != set(expected) or hop.cuts < CUTS:
                assert time.monotonic() < deadline, context()
                right |= fetcher.fetch_all(expected, rng)
            fetch_cuts = hop.cuts - triage_cuts - release_cuts - idle_cuts

            # The hop goes quiet: a whole session fetches everything right; triage settles.
            on_loop(loop, hop.cut_randomly, None)
            assert fetcher.fetch_all(expected, rng) == set(expected), fetcher.failures[-1:]
            assert wait_until(lambda: not untriaged(dovecot, user), 60), proxy.log_text()
        finally:
            proxy.stop()
        print(
            f"seed {SEED}: {hop.cuts} cuts over {hop.connections} connections "
            f"(triage and filing {triage_cuts}, release {release_cuts}, other {idle_cuts}, "
            f"fetch {fetch_cuts}; {waves} waves, {stranded} requests done with mail held); "
            f"client sessions {fetcher.sessions}, failed cleanly {len(fetcher.failures)} "
            f"{dict(Counter(f.split(': ')[1] for f in fetcher.failures))}"
        )
    log = proxy.log_text()
    assert "Traceback" not in log, log
    assert customers, "the seed drew no customer mail"
    census = Census.take(dovecot, user, folders=[folder])
    assert_sound(
        census,
        delivered,
        holds=HOLDS,
        released=HOLDS,
        store=login.state,
        login=user,
        context=context(),
    )
    assert all(census.folders[folder].get(mid) == 1 for mid in customers), census.folders
