"""The whole Dovecot stopped and started again (same ports, same mail) under a running proxy.

Two mail programs IDLE on INBOX through the proxy and triage IDLEs on its own connection when
the server goes away. The clients must hear a BYE or see the connection close, promptly (no
hang); triage must notice, retry on its own (``retry_max`` is a second) and, once the server is
back, hold what arrives; a client that connects again works as before. While the server is
down, triage is seen failing to connect before it comes back (the restart is not quicker than
triage's look). The test has its own Dovecot, so the restart touches no other test.

It ends with the census of tests/testbed/census.py after a release of everything: each message
once, nothing left held, released mail marked, one digest per release that moved mail.
``COMMSPROXY_FAULTS_LONG=1`` restarts three times instead of once.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commsproxy.triage.state_store import StateStore
from tests.integration.test_triage import newsletter, thread_reply
from tests.integration.test_triage_health import Login
from tests.testbed.census import Census, assert_sound
from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import wait_until

HOLDS = ("Later", "Later/Bulk")
LONG = os.environ.get("COMMSPROXY_FAULTS_LONG", "") not in ("", "0")
RESTARTS = 3 if LONG else 1
HANG = 15.0  # seconds a client in IDLE may wait for the BYE or the close before it is a hang


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    with Dovecot(user_pool=4) as instance:
        yield instance


class IdleClient:
    """A mail program IDLE on INBOX through the proxy, over a plain socket."""

    def __init__(self, proxy: ProxyProcess, user: str, password: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", proxy.imap_port), timeout=HANG)
        self.buffer = b""
        self.line()  # greeting
        self.command(f"a LOGIN {user} {password}")
        self.command("b SELECT INBOX")
        self.sock.sendall(b"c IDLE\r\n")
        while not self.line().startswith(b"+"):
            pass

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def command(self, text: str) -> list[bytes]:
        tag = text.split(" ", 1)[0].encode()
        self.sock.sendall(text.encode() + b"\r\n")
        lines = []
        while not (line := self.line()).startswith(tag + b" "):
            lines.append(line)
        assert line.startswith(tag + b" OK"), (text, line, lines)
        return lines

    def ended(self) -> str:
        """How the connection ended once the server went: 'BYE', 'closed'; raises on a hang."""
        try:
            while True:
                line = self.line()
                if line.startswith(b"* BYE"):
                    return "BYE"
        except EOFError:
            return "closed"
        except ConnectionResetError:
            return "reset"
        finally:
            self.sock.close()


def held(dovecot: Dovecot, user: str) -> int:
    total = 0
    for box in HOLDS:
        with contextlib.suppress(DovecotError):
            total += dovecot.message_count(user, box)
    return total


def watching(proxy: ProxyProcess) -> int:
    return sum(1 for line in proxy.lines() if "watching INBOX" in line)


def deliver(dovecot: Dovecot, user: str, n: int) -> list[str]:
    mids = []
    for i in range(n):
        mid = f"<restart-{uuid.uuid4().hex[:12]}@test.example>"
        dovecot.deliver(user, newsletter(mid) if i % 2 else thread_reply(mid))
        mids.append(mid)
    return mids


def test_dovecot_restart_while_clients_idle_and_triage_waits(
    own_dovecot: Dovecot, tmp_path: Path
) -> None:
    dovecot = own_dovecot
    login = Login(dovecot, tmp_path)
    user = login.user
    delivered = deliver(dovecot, user, 4)
    proxy = login.start()
    try:
        assert proxy.wait_for_log("watching INBOX", 30), proxy.log_text()
        assert wait_until(lambda: held(dovecot, user) == 4, 30), proxy.log_text()
        for restart in range(RESTARTS):
            clients = [IdleClient(proxy, user, login.password) for _ in range(2)]
            before = watching(proxy)
            dovecot.stop_server()
            began = time.monotonic()
            endings = [client.ended() for client in clients]
            assert time.monotonic() - began < HANG
            assert set(endings) <= {"BYE", "closed"}, endings
            print(f"restart {restart}: clients ended {endings} in {time.monotonic() - began:.2f}s")
            # Triage loses its link, tries again while the server is down and fails (logged
            # "still ..."), then gets back by itself once it is up.
            assert proxy.wait_for_log(r"triage\[.*\]: .*reconnecting in", 30), proxy.log_text()
            assert proxy.wait_for_log(r"triage\[.*\]: still ", 30), proxy.log_text()
            dovecot.start_server()
            assert wait_until(lambda: watching(proxy) > before, 30), proxy.log_text()  # noqa: B023
            new = deliver(dovecot, user, 4)
            delivered += new
            total = 4 * (restart + 2)
            assert wait_until(lambda: held(dovecot, user) == total, 30), (  # noqa: B023
                proxy.log_text()
            )
            # A mail program connecting again works as before, and can IDLE again.
            again = IdleClient(proxy, user, login.password)
            again.sock.sendall(b"DONE\r\n")
            while not again.line().startswith(b"c OK"):
                pass
            again.command("d NOOP")
            again.command("e LOGOUT")
            again.sock.close()

        # Release everything, then the census.
        with StateStore.open(login.state) as store:
            store.request_release(None, None, datetime.now(UTC))

        def settled() -> bool:
            with StateStore.open(login.state) as store:
                return not store.pending_release_requests()

        assert wait_until(lambda: held(dovecot, user) == 0 and settled(), 30), proxy.log_text()
    finally:
        proxy.stop()
    assert "Traceback" not in proxy.log_text(), proxy.log_text()
    assert_sound(
        Census.take(dovecot, user),
        delivered,
        holds=HOLDS,
        released=HOLDS,
        store=login.state,
        login=user,
    )
