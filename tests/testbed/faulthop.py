"""A TCP hop between an IMAP client and the real server that cuts the link at a chosen command.

Killing a process or kicking a user cuts at a random moment; these tests need the exact moment
that matters: just before a command reaches the server (the server never did it), or just
after the server completed it (the server did it, the client never heard). The hop forwards
bytes unchanged and reads only client command lines, skipping literals (``{n}`` / ``{n+}``) so a
message body is never taken for a command.

``cut_randomly`` is the other mode: a seeded generator decides, for each stretch of ``within``
bytes a connection passes (both directions counted), whether it is cut in that stretch and
after how many bytes, wherever that falls: inside a command, a literal, a server answer, an
IDLE. A long-lived connection is cut sooner or later too. Every cut is written to ``journal``,
so a failing run says where it cut, and the seed repeats the draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["FaultHop", "Mode"]

Mode = Literal["before", "after"]
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")
_READ = 65536


@dataclass(eq=False)
class _Link:
    """One client connection and its server connection."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    tag: bytes | None = None  # "after" mode: the command whose completion is withheld
    withheld: bytearray = field(default_factory=bytearray)
    number: int = 0
    passed: int = 0  # random mode: bytes through the link so far, both ways
    budget: int | None = None  # random mode: cut once ``passed`` would exceed this
    recheck: int | None = None  # random mode: no cut drawn; draw again at this many bytes

    def close(self) -> None:
        self.client.close()
        self.server.close()


class FaultHop:
    """Listens on loopback; forwards each connection to ``host:port``, cutting where armed.

    ``arm(pattern, mode, times)``: the next ``times`` client command lines matching
    ``pattern`` (a bytes regex, e.g. ``rb"^\\S+ UID MOVE "``) each cut their connection:
    ``"before"`` drops the command; ``"after"`` forwards it, withholds the server's answer
    until its tagged completion arrives (so the server has surely done it), then cuts.
    """

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.host = "127.0.0.1"
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self.swallowed: list[bytes] = []  # "after" mode: the answers the client never got
        self._pattern: re.Pattern[bytes] | None = None
        self._mode: Mode = "before"
        self._left = 0
        self.journal: list[str] = []  # random mode: each cut, where it fell
        self._random: random.Random | None = None
        self._chance = 0.0
        self._within = 0
        self._cuts_left = 0
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    def arm(self, pattern: bytes, mode: Mode, times: int = 1) -> None:
        self._pattern, self._mode, self._left = re.compile(pattern), mode, times

    def cut_randomly(
        self,
        rng: random.Random | None,
        chance: float = 0.5,
        within: int = 20000,
        limit: int = 10**9,
    ) -> None:
        """From now on each stretch of ``within`` bytes of a connection is cut, with
        ``chance``, after a number of bytes drawn from ``rng``; at most ``limit`` cuts. ``None``
        stops all cutting, also of links already drawn."""
        self._random, self._chance, self._within = rng, chance, within
        self._cuts_left = limit if rng is not None else 0

    async def start(self) -> FaultHop:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> FaultHop:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- per connection -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)  # so close() can wait for it
        handler.add_done_callback(self._handlers.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        self.connections += 1
        link = _Link(writer, up_writer, number=self.connections)
        self._draw(link, 0)
        self._links.add(link)
        pumps = [
            asyncio.create_task(self._client_to_server(reader, link)),
            asyncio.create_task(self._server_to_client(up_reader, link)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            link.close()
            self._links.discard(link)
            for side in (link.client, link.server):
                with contextlib.suppress(OSError):
                    await side.wait_closed()

    def _cut(self, link: _Link) -> None:
        self.cuts += 1
        link.close()

    def _draw(self, link: _Link, at: int) -> None:
        """Random mode: whether the stretch from ``at`` bytes on ends in a cut, and where."""
        link.budget = link.recheck = None
        if self._random is None:
            return
        if self._random.random() < self._chance:
            link.budget = at + self._random.randrange(self._within)
        else:
            link.recheck = at + self._within

    def _spend(self, link: _Link, data: bytes, direction: str) -> tuple[bytes, bool]:
        """Random mode: the part of ``data`` the link passes, and whether it is cut after."""
        end = link.passed + len(data)
        while link.recheck is not None and link.recheck < end:
            self._draw(link, link.recheck)
        if self._cuts_left <= 0 or link.budget is None or link.budget >= end:
            link.passed = end
            return data, False
        keep = link.budget - link.passed
        link.passed = end
        self._cuts_left -= 1
        self.journal.append(
            f"connection {link.number}: cut after {link.budget} bytes ({direction})"
        )
        return data[:keep], True

    def _matches(self, line: bytes) -> bool:
        if self._pattern is None or self._left <= 0 or not self._pattern.search(line):
            return False
        self._left -= 1
        return True

    async def _client_to_server(self, reader: asyncio.StreamReader, link: _Link) -> None:
        buffer = bytearray()
        literal = 0  # bytes of a literal still to pass through unread
        with contextlib.suppress(OSError):
            while data := await reader.read(_READ):
                data, cut = self._spend(link, data, "to the server")
                if cut:  # what fits the budget goes as it comes, even half a line
                    link.server.write(bytes(buffer) + data)
                    await link.server.drain()
                    self._cut(link)
                    return
                buffer += data
                while buffer:
                    if literal:
                        take = min(literal, len(buffer))
                        link.server.write(bytes(buffer[:take]))
                        del buffer[:take]
                        literal -= take
                        continue
                    end = buffer.find(b"\r\n")
                    if end < 0:
                        break  # a command line is never split across our decision
                    line = bytes(buffer[: end + 2])
                    del buffer[: end + 2]
                    if self._matches(line):
                        if self._mode == "before":
                            self._cut(link)
                            return
                        # Set before writing: the answer cannot overtake this on one loop.
                        link.tag = line.split(b" ", 1)[0]
                    link.server.write(line)
                    if found := _LITERAL.search(line):
                        literal = int(found.group(1))
                await link.server.drain()

    async def _server_to_client(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(_READ):
                data, cut = self._spend(link, data, "to the client")
                if cut:
                    link.client.write(data)
                    await link.client.drain()
                    self._cut(link)
                    return
                if link.tag is None:
                    link.client.write(data)
                    await link.client.drain()
                    continue
                # The client waited for every earlier answer, so all of this answers the cut
                # command; its tagged line means the server finished it.
                link.withheld += data
                if re.search(rb"(?:\A|\n)" + re.escape(link.tag) + rb" ", link.withheld):
                    self.swallowed.append(bytes(link.withheld))
                    self._cut(link)
                    return
