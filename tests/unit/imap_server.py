"""A scripted IMAP server on 127.0.0.1 for unit tests of the client: bytes in, bytes out.

A test gives a coroutine that plays the server's side of one connection with a :class:`Peer`:
``await peer.command()`` reads the client's next whole command (literals inline; a
synchronizing literal gets ``+`` first unless ``refuse_literals`` is set) and ``peer.send``
writes raw bytes, so every transcript is spelled out byte for byte in the test.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from commsproxy.endpoints import Endpoint, Security
from commsproxy.imap.framer import NEED_DATA, Framer, Line, MessageEnd
from commsproxy.imap.grammar import Command, parse_command

GREETING = b"* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE MOVE UIDPLUS] ready\r\n"


@dataclass
class Peer:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    refuse_literals: bool = False
    received: list[bytes] = field(default_factory=list)
    _framer: Framer = field(default_factory=lambda: Framer(max_head=1 << 24))

    async def message(self) -> bytes:
        """The client's next whole message (a command, or a line answering a continuation)."""
        while True:
            event = self._framer.next_event()
            if event is NEED_DATA:
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("the client closed the connection")
                self._framer.receive_data(data)
            elif isinstance(event, Line) and event.literal and event.literal.synchronizing:
                if self.refuse_literals:
                    self._framer.cancel_literal()
                    self.received.append(event.data)
                    return event.data
                self.send(b"+ go ahead\r\n")
            elif isinstance(event, MessageEnd):
                self.received.append(event.head)
                return event.head

    async def command(self) -> Command:
        return parse_command(await self.message())

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):  # a broken TLS handshake may never finish closing
            await asyncio.wait_for(self.writer.wait_closed(), 1)


Script = Callable[[Peer], Awaitable[None]]


@dataclass
class Served:
    endpoint: Endpoint
    peers: list[Peer]
    errors: list[BaseException]


@contextlib.asynccontextmanager
async def scripted_server(
    script: Script, *, greeting: bytes = GREETING, refuse_literals: bool = False
) -> AsyncIterator[Served]:
    """A plain-text server on a free port; each connection gets the greeting, then ``script``."""
    served = Served(Endpoint("imap://127.0.0.1", "127.0.0.1", 0, Security.PLAIN), [], [])
    tasks: set[asyncio.Task[None]] = set()

    async def run(peer: Peer) -> None:
        try:
            peer.send(greeting)
            await script(peer)
        except (EOFError, ConnectionError, asyncio.CancelledError):
            pass  # the client left, or the test is over
        except BaseException as err:  # shown by the test, not lost in a task
            served.errors.append(err)
        finally:
            await peer.close()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, refuse_literals)
        served.peers.append(peer)
        task = asyncio.create_task(run(peer))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    served.endpoint = Endpoint(f"imap://127.0.0.1:{port}", "127.0.0.1", port, Security.PLAIN)
    try:
        yield served
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.close()
        await server.wait_closed()
    if served.errors:
        raise served.errors[0]
