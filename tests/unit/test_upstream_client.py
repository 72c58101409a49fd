"""The IMAP client against scripted servers: every transcript byte for byte.

Literals both ways, continuations, unsolicited responses, refusals with codes, BYE, a line too
long to hold, timeouts, IDLE and the login steps.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl

import pytest
import trustme

from commsproxy.endpoints import Endpoint, Security
from commsproxy.imap.commands import Literal
from commsproxy.imap.responses import parse_fetch, parse_search
from commsproxy.upstream import (
    CommandBad,
    CommandNo,
    ConnectError,
    ConnectionLost,
    ImapTimeout,
    ProtocolError,
    connect,
    empty_answer,
    password_login,
    sasl_login,
)
from commsproxy.upstream.blocking import LoopThread
from commsproxy.upstream.client import MAX_LINE

from .imap_server import Peer, scripted_server

TLS = ssl.create_default_context()
PLAIN_CAPS = b"* OK [CAPABILITY IMAP4rev1 IDLE] ready\r\n"  # no LITERAL+, no SASL-IR


async def _logged_in(peer: Peer) -> None:
    """The server side of a LOGIN that says its capabilities in the OK."""
    command = await peer.command()
    assert command.name == "LOGIN"
    peer.send(command.tag.encode() + b" OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in\r\n")


async def test_login_reads_capabilities_and_commands_get_typed_replies() -> None:
    async def script(peer: Peer) -> None:
        await _logged_in(peer)
        command = await peer.command()
        assert (command.name, command.args) == ("UID SEARCH", ("ALL",))
        peer.send(b"* SEARCH 3 5 8\r\n" + command.tag.encode() + b" OK Search done\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS, password_login("ann", 'pa"ss'))
        assert client.has("MOVE")
        assert not client.has("LITERAL+")
        reply = await client.command("UID SEARCH", "ALL")
        assert (reply.status, reply.text) == ("OK", "Search done")
        assert parse_search(reply.untagged) == [3, 5, 8]
        await client.close()
    assert served.peers[0].received[0] == b't1 LOGIN "ann" "pa\\"ss"\r\n'


async def test_a_synchronizing_literal_waits_for_the_continuation() -> None:
    body = b"Subject: hi\r\n\r\na1 LOGOUT\r\n"

    async def script(peer: Peer) -> None:
        command = await peer.command()  # Peer sends "+ go ahead" before reading the literal
        peer.send(command.tag.encode() + b" OK [APPENDUID 7 42] Append completed\r\n")
        await peer.message()

    async with scripted_server(script, greeting=PLAIN_CAPS) as served:
        client = await connect(served.endpoint, TLS)
        reply = await client.command("APPEND", '"INBOX"', "(\\Seen)", Literal(body))
        assert reply.code == "APPENDUID"
        await client.close()
    assert served.peers[0].received[0] == b't1 APPEND "INBOX" (\\Seen) {26}\r\n' + body + b"\r\n"


async def test_literal_plus_sends_at_once() -> None:
    async def script(peer: Peer) -> None:
        peer.refuse_literals = True  # a "+" never comes: only LITERAL+ can get through
        message = await peer.message()
        assert message == b't1 APPEND "INBOX" {3+}\r\nabc\r\n'
        peer.send(b"t1 OK done\r\n")
        await peer.message()

    async with scripted_server(script) as served:  # the greeting offers LITERAL+
        client = await connect(served.endpoint, TLS)
        await client.command("APPEND", '"INBOX"', Literal(b"abc"))
        await client.close()


async def test_a_literal_refused_instead_of_continued_is_not_sent() -> None:
    async def script(peer: Peer) -> None:
        first = await peer.message()
        assert first.endswith(b"{5}\r\n")
        peer.send(b"t1 NO [OVERQUOTA] Too big\r\n")
        command = await peer.command()  # the next command, not the refused literal
        assert command.name == "NOOP"
        peer.send(b"t2 OK NOOP done\r\n")
        await peer.message()

    async with scripted_server(script, greeting=PLAIN_CAPS, refuse_literals=True) as served:
        client = await connect(served.endpoint, TLS)
        with pytest.raises(CommandNo, match=r"APPEND: NO \[OVERQUOTA\] Too big") as refused:
            await client.command("APPEND", '"INBOX"', Literal(b"hello"))
        assert refused.value.code == "OVERQUOTA"
        await client.command("NOOP")
        await client.close()


async def test_literals_from_the_server_are_never_read_as_protocol() -> None:
    header = b"Subject: t1 OK fooled you )\r\n\r\n"

    async def script(peer: Peer) -> None:
        command = await peer.command()
        peer.send(
            b"* 1 FETCH (UID 9 BODY[HEADER] {%d}\r\n" % len(header)
            + header
            + b" FLAGS (\\Seen))\r\n"
            + command.tag.encode()
            + b" OK Fetch completed\r\n"
        )
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        reply = await client.command("UID FETCH", "9", "(UID FLAGS BODY.PEEK[HEADER])")
        [fetched] = parse_fetch(reply.untagged)
        assert (fetched.uid, fetched.header, fetched.flags) == (9, header, {"\\Seen"})
        assert client.take_events() == []  # the FETCH was asked for: not news
        await client.close()


async def test_unsolicited_responses_during_a_command_are_surfaced() -> None:
    news = [b"* 5 EXISTS\r\n", b"* 3 EXPUNGE\r\n", b"* 2 FETCH (FLAGS (\\Seen))\r\n"]

    async def script(peer: Peer) -> None:
        command = await peer.command()
        peer.send(b"".join(news) + b"* SEARCH 1\r\n" + command.tag.encode() + b" OK done\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        reply = await client.command("UID SEARCH", "ALL")
        assert list(reply.untagged) == [*news, b"* SEARCH 1\r\n"]
        assert client.take_events() == news
        await client.close()


async def test_news_between_commands_waits_in_the_events_and_their_bound_is_kept() -> None:
    async def script(peer: Peer) -> None:
        command = await peer.command()
        peer.send(command.tag.encode() + b" OK done\r\n")
        await peer.writer.drain()
        await asyncio.sleep(0.02)  # no command in flight now
        peer.send(b"* VANISHED 7:9\r\n* 4 EXISTS\r\n* 5 EXISTS\r\n* OK Still here\r\n")
        command = await peer.command()
        peer.send(command.tag.encode() + b" OK\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        client.events = type(client.events)(maxlen=3)
        await client.command("NOOP")
        await asyncio.sleep(0.1)
        await client.command("NOOP")
        assert client.take_events() == [
            b"* 4 EXISTS\r\n",
            b"* 5 EXISTS\r\n",
            b"* OK Still here\r\n",
        ]
        assert client.events_dropped == 1  # the VANISHED: counted, so a reader knows to look
        await client.close()


@pytest.mark.parametrize(
    ("answer", "error", "code"),
    [
        (b"NO [TRYCREATE] No such mailbox", CommandNo, "TRYCREATE"),
        (b"NO [EXPUNGEISSUED] Some messages were expunged", CommandNo, "EXPUNGEISSUED"),
        (b"NO [ALREADYEXISTS] Mailbox exists", CommandNo, "ALREADYEXISTS"),
        (b"NO [NONEXISTENT] Unknown mailbox", CommandNo, "NONEXISTENT"),
        (b"NO [THROTTLED] Slow down", CommandNo, "THROTTLED"),
        (b"NO just no", CommandNo, None),
        (b"BAD Error in IMAP command", CommandBad, None),
    ],
)
async def test_refusals_carry_their_code_and_leave_the_link_usable(
    answer: bytes, error: type[Exception], code: str | None
) -> None:
    async def script(peer: Peer) -> None:
        command = await peer.command()
        peer.send(command.tag.encode() + b" " + answer + b"\r\n")
        command = await peer.command()
        peer.send(command.tag.encode() + b" OK\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        with pytest.raises(error) as refused:
            await client.command("UID MOVE", "1", '"Later"', what="UID MOVE 1 Later")
        assert getattr(refused.value, "code", None) == code
        assert str(refused.value).startswith(f"{served.endpoint}: UID MOVE 1 Later: ")
        await client.command("NOOP")
        assert not client.closed
        await client.close()


async def test_bye_in_the_middle_of_a_command_says_why() -> None:
    async def script(peer: Peer) -> None:
        await peer.command()
        peer.send(b"* 1 FETCH (UID 1 FLAGS ())\r\n* BYE Server shutting down\r\n")
        await peer.close()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        with pytest.raises(ConnectionLost, match="BYE Server shutting down") as lost:
            await client.command("UID FETCH", "1:*", "(FLAGS)")
        assert lost.value.bye == "Server shutting down"
        assert client.closed
        with pytest.raises(ConnectionLost, match="connection lost"):
            await client.command("NOOP")
        await client.close()


async def test_a_line_of_ten_megabytes_is_refused_not_buffered() -> None:
    async def script(peer: Peer) -> None:
        await peer.command()
        chunk = b"x" * (1 << 20)
        peer.send(b"* OK ")
        for _ in range(10):
            peer.send(chunk)
            await peer.writer.drain()
        peer.send(b"\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)  # the default bound: 8 MB
        with pytest.raises(ProtocolError, match=f"line longer than {MAX_LINE} bytes"):
            await client.command("NOOP")
        assert client._framer.buffered <= MAX_LINE + 256 * 1024  # one read at most beyond
        await client.close()


async def test_a_response_over_the_message_bound_is_refused() -> None:
    async def script(peer: Peer) -> None:
        await peer.command()
        peer.send(b"* 1 FETCH (BODY[] {2000000}\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS, max_message=1_000_000)
        with pytest.raises(ProtocolError, match="exceeds the limit"):
            await client.command("UID FETCH", "1", "BODY[]")
        await client.close()


async def test_no_answer_in_time_closes_the_link() -> None:
    async def script(peer: Peer) -> None:
        await peer.command()
        await asyncio.sleep(10)

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        with pytest.raises(ImapTimeout, match=r"no answer to NOOP within 0\.2 s"):
            await client.command("NOOP", seconds=0.2)
        assert client.closed  # a late answer would be read as the next command's
        await client.close()


async def test_idle_done() -> None:
    async def script(peer: Peer) -> None:
        command = await peer.command()
        assert command.name == "IDLE"
        peer.send(b"+ idling\r\n")
        await asyncio.sleep(0.05)
        peer.send(b"* 4 EXISTS\r\n* 1 RECENT\r\n")
        assert await peer.message() == b"DONE\r\n"
        peer.send(command.tag.encode() + b" OK Idle completed\r\n")
        command = await peer.command()
        peer.send(command.tag.encode() + b" OK NOOP\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        await client.idle_start()
        assert client.idling
        pushed = await client.idle_wait(5)
        if len(pushed) < 2:
            pushed += await client.idle_wait(5)
        assert pushed == [b"* 4 EXISTS\r\n", b"* 1 RECENT\r\n"]
        assert await client.idle_wait(0.05) == []  # quiet
        await client.idle_done()
        await client.command("NOOP")  # commands go again after DONE
        await client.close()


async def test_a_command_waits_while_idling_until_done() -> None:
    async def script(peer: Peer) -> None:
        idle = await peer.command()
        peer.send(b"+ idling\r\n")
        assert await peer.message() == b"DONE\r\n"
        peer.send(idle.tag.encode() + b" OK Idle completed\r\n")
        noop = await peer.command()
        peer.send(noop.tag.encode() + b" OK\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        await client.idle_start()
        noop = asyncio.create_task(client.command("NOOP"))
        await asyncio.sleep(0.05)
        assert not noop.done()
        await client.idle_done()
        await noop
        await client.close()
    assert served.peers[0].received[:3] == [b"t1 IDLE\r\n", b"DONE\r\n", b"t2 NOOP\r\n"]


async def test_idle_wait_raises_when_the_link_drops() -> None:
    async def script(peer: Peer) -> None:
        await peer.command()
        peer.send(b"+ idling\r\n* BYE Idle for too long\r\n")
        await peer.close()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        await client.idle_start()

        async def wait_until_lost() -> None:
            while True:
                await client.idle_wait(1)

        with pytest.raises(ConnectionLost, match="Idle for too long"):
            await asyncio.wait_for(wait_until_lost(), 5)
        await client.logout()


async def test_authenticate_with_sasl_ir_and_a_challenge() -> None:
    token = b"user=ann\x01auth=Bearer t0k\x01\x01"

    async def script(peer: Peer) -> None:
        command = await peer.command()
        assert command.args == (
            "XOAUTH2",
            base64.b64encode(token).decode(),
        )
        challenge = base64.b64encode(b'{"status":"401"}')
        peer.send(b"+ " + challenge + b"\r\n")
        assert await peer.message() == b"\r\n"  # the empty answer
        peer.send(command.tag.encode() + b" NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        with pytest.raises(CommandNo, match="AUTHENTICATIONFAILED") as refused:
            await connect(served.endpoint, TLS, sasl_login("XOAUTH2", token, empty_answer))
        assert refused.value.code == "AUTHENTICATIONFAILED"


async def test_authenticate_without_sasl_ir_waits_for_the_first_challenge() -> None:
    seen: list[bytes] = []

    async def script(peer: Peer) -> None:
        command = await peer.command()
        assert command.args == ("PLAIN",)
        peer.send(b"+ \r\n")
        seen.append(base64.b64decode(await peer.message()))
        peer.send(command.tag.encode() + b" OK [CAPABILITY IMAP4rev1 MOVE] Logged in\r\n")
        await peer.message()

    async with scripted_server(script, greeting=PLAIN_CAPS) as served:
        client = await connect(served.endpoint, TLS, password_login("jürgen", "pässwort"))
        assert client.has("MOVE")
        await client.close()
    assert seen == ["\0jürgen\0pässwort".encode()]


async def test_commands_from_two_tasks_run_one_after_the_other() -> None:
    async def script(peer: Peer) -> None:
        for _ in range(2):
            command = await peer.command()
            await asyncio.sleep(0.02)
            peer.send(command.tag.encode() + b" OK " + command.name.encode() + b"\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        first, second = await asyncio.gather(client.command("NOOP"), client.command("CHECK"))
        assert (first.text, second.text) == ("NOOP", "CHECK")
        await client.close()


async def test_a_cancelled_command_closes_the_link() -> None:
    async def script(peer: Peer) -> None:
        await peer.command()
        await asyncio.sleep(10)

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, TLS)
        task = asyncio.create_task(client.command("NOOP"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert client.closed
        await client.close()


# -- connecting -----------------------------------------------------------------------------------


async def test_an_unreachable_server_is_named() -> None:
    async with scripted_server(_logged_in) as served:
        port = served.endpoint.port
    endpoint = Endpoint(f"imap://127.0.0.1:{port}", "127.0.0.1", port, Security.PLAIN)
    with pytest.raises(ConnectError, match=rf"upstream 127\.0\.0\.1:{port} unreachable"):
        await connect(endpoint, TLS)


async def test_a_greeting_that_is_not_ok_is_refused() -> None:
    async with scripted_server(_logged_in, greeting=b"* BYE Too many connections\r\n") as served:
        with pytest.raises(ConnectError, match="did not greet with OK"):
            await connect(served.endpoint, TLS)


async def test_data_injected_after_starttls_ok_is_refused() -> None:
    async def script(peer: Peer) -> None:
        assert await peer.message() == b"cp0 STARTTLS\r\n"
        peer.send(b"cp0 OK Begin TLS\r\n* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] injected\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        endpoint = Endpoint("x", "127.0.0.1", served.endpoint.port, Security.STARTTLS)
        await asyncio.sleep(0)
        with pytest.raises(ConnectError, match="sent data in clear after accepting STARTTLS"):
            await connect(endpoint, TLS, seconds=2)


async def test_starttls_refused_is_said() -> None:
    async def script(peer: Peer) -> None:
        await peer.message()
        peer.send(b"cp0 NO STARTTLS not available\r\n")
        await peer.message()

    async with scripted_server(script) as served:
        endpoint = Endpoint("x", "127.0.0.1", served.endpoint.port, Security.STARTTLS)
        with pytest.raises(ConnectError, match="refused STARTTLS"):
            await connect(endpoint, TLS, seconds=2)


# -- TLS ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_pair() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 and a client context trusting only its CA."""
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


async def test_starttls_upgrades_and_reads_capabilities_again(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, client_tls = tls_pair

    async def script(peer: Peer) -> None:
        assert await peer.message() == b"cp0 STARTTLS\r\n"
        peer.send(b"cp0 OK Begin TLS negotiation now\r\n")
        await peer.writer.drain()
        await peer.writer.start_tls(server_tls)
        command = await peer.command()
        assert command.name == "CAPABILITY"  # the greeting's list was stale
        peer.send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN MOVE\r\n" + command.tag.encode() + b" OK\r\n")
        await peer.message()

    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready\r\n"
    async with scripted_server(script, greeting=greeting) as served:
        endpoint = Endpoint("x", "127.0.0.1", served.endpoint.port, Security.STARTTLS)
        client = await connect(endpoint, client_tls, seconds=5)
        assert client.has("MOVE")
        assert not client.has("LOGINDISABLED")
        await client.close()


async def test_starttls_to_an_untrusted_certificate_is_refused(
    tls_pair: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    server_tls, _ = tls_pair

    async def script(peer: Peer) -> None:
        await peer.message()
        peer.send(b"cp0 OK Begin TLS negotiation now\r\n")
        await peer.writer.drain()
        with contextlib.suppress(ssl.SSLError, ConnectionError):
            await peer.writer.start_tls(server_tls)

    async with scripted_server(script) as served:
        endpoint = Endpoint("x", "127.0.0.1", served.endpoint.port, Security.STARTTLS)
        with pytest.raises(ConnectError, match="TLS certificate not trusted"):
            await connect(endpoint, ssl.create_default_context(), seconds=5)


# -- blocking callers -----------------------------------------------------------------------------


def test_a_loop_thread_runs_the_client_for_blocking_code() -> None:
    async def script(peer: Peer) -> None:
        command = await peer.command()
        peer.send(b"* SEARCH 4\r\n" + command.tag.encode() + b" OK\r\n")
        await peer.message()

    async def fails() -> None:
        raise ValueError("from the loop")

    with LoopThread() as loop:
        server = scripted_server(script)
        served = loop.run(server.__aenter__())
        client = loop.run(connect(served.endpoint, TLS))
        assert parse_search(loop.run(client.command("UID SEARCH", "ALL")).untagged) == [4]
        with pytest.raises(ValueError, match="from the loop"):
            loop.run(fails())
        loop.run(client.logout())
        loop.run(server.__aexit__(None, None, None))
