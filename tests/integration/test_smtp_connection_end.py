"""However an SMTP client's connection ends, its upstream link ends with it, and quietly.

The upstream link is the client's login at Dovecot's submission service: left open, it could be
handed to a later client. STARTTLS starts the session afresh (RFC 3207 4.2), so the link logged
in before it goes too. A client leaving (QUIT, a hang-up, a reset, mid-DATA, around the TLS
handshake, while its replies are still being written) is the client's business: the proxy logs
no ERROR and no traceback for it.
"""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.fuzzing.harness import Target
from tests.fuzzing.wire import Wire
from tests.integration.helpers import client_context
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args


@pytest.fixture(scope="module")
def target(dovecot: Dovecot) -> Iterator[Target]:
    # A proxy of this module's own, so its log holds only what these sessions caused.
    process = ProxyProcess(proxy_args(dovecot, tls=True)).start()
    yield Target.start(process, dovecot)
    process.stop()


def _greeted(target: Target) -> Wire:
    wire = Wire(target.proxy.smtp_port)
    assert wire.wait_for_line(rb"220 ", 0, 10) is not None
    return wire


def _ask(wire: Wire, command: bytes) -> bytes:
    since = len(wire.received)
    wire.send(command)
    hit = wire.wait_for_line(rb"\d\d\d ", since, 15)
    assert hit is not None, f"no answer to {command!r}: {bytes(wire.received)!r}"
    return hit[1]


def _auth(wire: Wire, user: tuple[str, str]) -> None:
    plain = base64.b64encode(b"\0%s\0%s" % (user[0].encode(), user[1].encode()))
    assert _ask(wire, b"AUTH PLAIN " + plain + b"\r\n").startswith(b"235")


def _quiet(target: Target) -> list[str]:
    time.sleep(0.2)  # the proxy's last lines about the session reach its log
    return target.upstream_released() + target.process_problems()


def test_login_does_not_outlive_starttls(target: Target) -> None:
    """After STARTTLS the same connection is not logged in upstream any more."""
    with _greeted(target) as wire:
        _ask(wire, b"EHLO a.example\r\n")
        _auth(wire, target.user)
        assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
        assert wire.start_tls(client_context(target.dovecot))
        _ask(wire, b"EHLO a.example\r\n")
        reply = _ask(wire, b"MAIL FROM:<%s@localhost>\r\n" % target.user[0].encode())
        assert reply.startswith(b"530"), reply  # Dovecot: authentication required
        assert _ask(wire, b"QUIT\r\n").startswith(b"221")
    assert _quiet(target) == []


def _quit(wire: Wire, target: Target) -> None:
    assert _ask(wire, b"QUIT\r\n").startswith(b"221")


def _hang_up(wire: Wire, target: Target) -> None:
    wire.close()


def _reset(wire: Wire, target: Target) -> None:
    wire.close(reset=True)


def _mid_data(wire: Wire, target: Target) -> None:
    _ask(wire, b"MAIL FROM:<%s@localhost>\r\n" % target.user[0].encode())
    _ask(wire, b"RCPT TO:<%s@localhost>\r\n" % target.user[0].encode())
    assert _ask(wire, b"DATA\r\n").startswith(b"354")
    wire.send(b"Subject: cut off\r\n\r\nhalf a message")
    wire.close(reset=True)


def _in_tls_handshake(wire: Wire, target: Target) -> None:
    assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
    wire.send(b"\x16\x03\x01\x00\x05hello")  # the start of a ClientHello, then gone
    wire.close()


def _after_starttls(wire: Wire, target: Target) -> None:
    assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
    assert wire.start_tls(client_context(target.dovecot))
    _quit(wire, target)


@pytest.mark.parametrize(
    "leave",
    [_quit, _hang_up, _reset, _mid_data, _in_tls_handshake, _after_starttls],
    ids=["quit", "hang-up", "reset", "mid-data", "in-tls-handshake", "after-starttls"],
)
def test_every_end_of_a_logged_in_connection_closes_its_upstream_link(
    target: Target, leave: Callable[[Wire, Target], None]
) -> None:
    for _ in range(3):
        wire = _greeted(target)
        _ask(wire, b"EHLO a.example\r\n")
        _auth(wire, target.user)
        leave(wire, target)
        wire.close()
    assert _quiet(target) == []


def test_clients_leaving_around_the_tls_handshake_log_no_error(target: Target) -> None:
    for round_ in range(10):
        wire = _greeted(target)
        _ask(wire, b"EHLO a.example\r\n")
        assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
        if round_ % 3 == 1:
            wire.send(b"EHLO not-tls\r\n")  # plain text where the handshake should be
        wire.close(reset=round_ % 2 == 0)
    assert _quiet(target) == []


def test_reset_while_replies_are_written_logs_no_error(target: Target) -> None:
    """A client that pipelines many commands, never reads their replies and resets."""
    for _ in range(5):
        wire = _greeted(target)
        wire.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        wire.send(b"EHLO a.example\r\n" + b"NOOP filling the reply buffer\r\n" * 20000)
        time.sleep(0.2)  # the proxy's writes back up behind the unread replies
        wire.close(reset=True)
    assert _quiet(target) == []


def test_reset_right_after_quit_logs_no_error(target: Target) -> None:
    """QUIT and more commands in flight, then a reset, while the proxy ends the upstream link."""
    plain = base64.b64encode(b"\0%s\0%s" % (target.user[0].encode(), target.user[1].encode()))
    for _ in range(20):
        wire = _greeted(target)
        _ask(wire, b"EHLO a.example\r\n")
        _auth(wire, target.user)
        wire.send(b"QUIT\n", cuts=(2,), pause=0.01)
        wire.send(b"AUTH PLAIN " + plain + b"\r\n")
        wire.close(reset=True)
    assert _quiet(target) == []


def test_second_starttls_inside_tls_is_refused(target: Target) -> None:
    with _greeted(target) as wire:
        _ask(wire, b"EHLO a.example\r\n")
        assert _ask(wire, b"STARTTLS\r\n").startswith(b"220")
        assert wire.start_tls(client_context(target.dovecot))
        since = len(wire.received)
        _ask(wire, b"EHLO a.example\r\n")
        assert b"STARTTLS" not in wire.received[since:]  # not offered inside TLS
        assert _ask(wire, b"STARTTLS\r\n").startswith(b"503 5.5.1")
        _auth(wire, target.user)  # the session goes on, in the TLS it has
        assert _ask(wire, b"QUIT\r\n").startswith(b"221")
    assert _quiet(target) == []
