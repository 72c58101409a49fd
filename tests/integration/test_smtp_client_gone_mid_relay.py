"""A client leaving while its message is still going upstream leaves no upstream link behind.

The proxy relays DATA live: when the client hangs up halfway through that, the upstream link is
in the middle of a message. A ``QUIT`` written there is only more message text, which the
upstream never answers, so the link would stay open until its timeout (and an upstream not
reading at all would keep it forever). The link is dropped at once instead.

The moment is made exact by a hop between the proxy and Dovecot's submission service that stops
reading from the proxy once the message is flowing: the proxy is then surely mid-message, with
its writes backed up, when the client leaves.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from tests.fuzzing.checks import upstream_connections
from tests.fuzzing.wire import Wire
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

# Far more than the commands before DATA (TLS handshake, EHLO, AUTH, MAIL, RCPT) take.
STALL_AFTER = 256 << 10
# More than the loopback socket buffers hold, so the proxy's own writes back up.
MESSAGE_SIZE = 16 << 20


class StallingHop:
    """Forwards TCP to ``port`` unchanged, but stops reading from the client (the proxy) after
    ``STALL_AFTER`` bytes in that direction; ``stalled`` is set then."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.done = threading.Event()
        self._sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, stalls: bool) -> None:
        passed = 0
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
                passed += len(data)
                if stalls and passed > STALL_AFTER:
                    self.stalled.set()
                    self.done.wait()
                    return
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.done.set()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture(scope="module")
def hop(dovecot: Dovecot) -> Iterator[StallingHop]:
    hop = StallingHop(dovecot.submission_port)
    yield hop
    hop.close()


@pytest.fixture(scope="module")
def proxy(dovecot: Dovecot, hop: StallingHop) -> Iterator[ProxyProcess]:
    process = ProxyProcess([
        "--no-triage",
        "--upstream", f"imaps://localhost:{dovecot.imaps_port}",
        "--cafile", str(dovecot.ca_file),
        "--smtp-upstream", f"smtp+starttls://localhost:{hop.port}",
        "--listen", "127.0.0.1:0",
        "--smtp-listen", "127.0.0.1:0",
    ]).start()  # fmt: skip
    yield process
    process.stop()


def _ask(wire: Wire, command: bytes) -> bytes:
    since = len(wire.received)
    wire.send(command)
    hit = wire.wait_for_line(rb"\d\d\d ", since, 15)
    assert hit is not None, f"no answer to {command!r}: {bytes(wire.received)!r}"
    return hit[1]


def _held(proxy: ProxyProcess, port: int, within: float) -> int:
    """The proxy's connections to ``port`` still open after at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while (held := upstream_connections(proxy.pid, port)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return held


@pytest.mark.parametrize("reset", [False, True], ids=["hang-up", "reset"])
def test_client_leaving_mid_relay_drops_the_upstream_link(
    dovecot: Dovecot, hop: StallingHop, proxy: ProxyProcess, reset: bool
) -> None:
    user, password = dovecot.new_user()
    hop.stalled.clear()
    wire = Wire(proxy.smtp_port, timeout=30)
    try:
        assert wire.wait_for_line(rb"220 ", 0, 10) is not None
        _ask(wire, b"EHLO a.example\r\n")
        plain = base64.b64encode(b"\0%s\0%s" % (user.encode(), password.encode()))
        assert _ask(wire, b"AUTH PLAIN " + plain + b"\r\n").startswith(b"235")
        assert _ask(wire, b"MAIL FROM:<%s@localhost>\r\n" % user.encode()).startswith(b"250")
        assert _ask(wire, b"RCPT TO:<%s@localhost>\r\n" % user.encode()).startswith(b"250")
        assert _ask(wire, b"DATA\r\n").startswith(b"354")
        line = b"x" * 998 + b"\r\n"
        wire.sock.sendall(b"Subject: cut off upstream\r\n\r\n" + line * (MESSAGE_SIZE // 1000))
        wire.sock.sendall(b".\r\n")
        assert hop.stalled.wait(30), "the message never reached the upstream hop"
        assert upstream_connections(proxy.pid, hop.port) == 1  # mid-message, waiting to write
    finally:
        wire.close(reset=reset)
    assert _held(proxy, hop.port, 5) == 0, "the upstream link outlived its client mid-message"
    assert proxy.returncode is None
