"""The relay's hook point and session state, in process, against the real Dovecot.

Later layers (the triage gate) plug into every session through ``RelayHooks`` and may pause the
forwarding of upstream responses. These tests drive a real session with a recording hook object
and check what it saw, what the session knows, and that a pause really withholds responses.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest

from commsproxy.endpoints import ListenAddress, parse_endpoint
from commsproxy.imap.grammar import Command, Response
from commsproxy.proxy.imap.listener import ImapListener, ImapListenerSettings
from commsproxy.proxy.imap.relay import Session
from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot

User = tuple[str, str]


class Recorder:
    """Records commands and responses; pauses responses after EXISTS while ``hold`` is set."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, str | None, str | None]] = []
        self.responses: list[Response] = []
        self.hold = False
        self.sessions: list[Session] = []
        self.logins: list[tuple[str, str]] = []

    async def before_command(self, session: Session, command: Command) -> None:
        self.commands.append((command.name, command.mailbox, session.state.selected))

    def on_login(self, session: Session, user: str, password: str) -> None:
        self.logins.append((user, password))

    def on_response(self, session: Session, response: Response) -> None:
        self.responses.append(response)
        if session not in self.sessions:
            self.sessions.append(session)
        if self.hold and response.name == "EXISTS":
            session.pause_responses()


@pytest.fixture
async def relay(dovecot: Dovecot) -> AsyncIterator[tuple[ImapListener, Recorder]]:
    recorder = Recorder()
    upstream = parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap")
    settings = ImapListenerSettings(
        upstream=upstream,
        upstream_tls=ssl.create_default_context(),
        listen=ListenAddress("127.0.0.1", 0),
    )
    listener = ImapListener(settings, hooks=recorder)
    await listener.start()
    yield listener, recorder
    await listener.stop()


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def command(self, tag: str, text: str) -> list[bytes]:
        self.writer.write(f"{tag} {text}\r\n".encode())
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 15)
            assert line, "connection closed"
            lines.append(line)
            if line.startswith(f"{tag} ".encode()):
                return lines


async def _client(listener: ImapListener) -> Client:
    address = listener.addresses[0]
    reader, writer = await asyncio.open_connection(address.host, address.port)
    assert (await reader.readline()).startswith(b"* OK")
    return Client(reader, writer)


async def test_hooks_see_commands_and_state_follows(
    relay: tuple[ImapListener, Recorder], dovecot: Dovecot, imap_user: User
) -> None:
    listener, recorder = relay
    client = await _client(listener)
    assert (await client.command("a", f"LOGIN {imap_user[0]} {imap_user[1]}"))[-1].startswith(
        b"a OK"
    )
    await client.command("b", "SELECT INBOX")
    (session,) = listener.sessions
    assert session.state.user == imap_user[0]
    assert session.state.selected == "INBOX"
    assert not session.state.read_only
    await client.command("c", "EXAMINE Sent")
    assert session.state.selected == "Sent"
    assert session.state.read_only
    await client.command("d", "SELECT NoSuchMailbox")
    assert session.state.selected is None  # a failed SELECT leaves nothing selected
    await client.command("e", "LOGOUT")
    client.writer.close()
    assert ("SELECT", "INBOX", None) in recorder.commands
    assert ("EXAMINE", "Sent", "INBOX") in recorder.commands
    assert session.state.in_flight == {}


async def test_paused_responses_are_withheld_until_resumed(
    relay: tuple[ImapListener, Recorder], dovecot: Dovecot, imap_user: User
) -> None:
    listener, recorder = relay
    client = await _client(listener)
    await client.command("a", f"LOGIN {imap_user[0]} {imap_user[1]}")
    await client.command("b", "SELECT INBOX")
    recorder.hold = True
    client.writer.write(b"i IDLE\r\n")
    assert (await client.reader.readline()).startswith(b"+")
    await asyncio.to_thread(dovecot.deliver, imap_user[0], message("held back"))
    (session,) = listener.sessions
    async with asyncio.timeout(15):
        while not session.responses_paused:
            await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(client.reader.readline(), 0.5)
    recorder.hold = False
    await session.resume_responses()
    assert await asyncio.wait_for(client.reader.readline(), 5) == b"* 1 EXISTS\r\n"
    client.writer.write(b"DONE\r\n")
    lines = [await asyncio.wait_for(client.reader.readline(), 5) for _ in range(2)]
    assert any(line.startswith(b"i OK") for line in lines)
    client.writer.close()
