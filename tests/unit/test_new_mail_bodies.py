"""How many messages triage asks for per ``UID FETCH`` of bodies, on a scripted server.

A step's bodies go out in commands whose answers should fit in about 8 MB, going by the size of
the messages fetched last: the first command assumes the largest a message can give (its header
and the whole body prefix), so a pass starts with about a hundred UIDs; once the messages prove
small, the rest of the step goes in one command, and once they prove big again the commands
shrink.
"""

from __future__ import annotations

import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from commsproxy.config import TriageConfig
from commsproxy.endpoints import parse_endpoint
from commsproxy.triage.engine_settings import EngineSettings
from commsproxy.triage.new_mail import NewMail
from commsproxy.triage.upstream import Upstream
from commsproxy.upstream import connect

from .imap_server import Peer, scripted_server


def _uids(spec: str) -> list[int]:
    out: list[int] = []
    for part in spec.split(","):
        first, _, last = part.partition(":")
        out += range(int(first), int(last or first) + 1)
    return out


@contextlib.asynccontextmanager
async def _server(text_size: dict[int, int], asked: list[int]) -> AsyncIterator[Upstream]:
    """Answers each UID FETCH with every asked message: a short header and ``text_size[uid]``
    bytes of body; ``asked`` gets the number of UIDs per FETCH."""

    async def script(peer: Peer) -> None:
        while True:
            message = await peer.message()
            tag, _, rest = message.partition(b" ")
            words = rest.split()
            if words[:2] == [b"UID", b"FETCH"]:
                uids = _uids(words[2].decode())
                asked.append(len(uids))
                for n, uid in enumerate(uids, 1):
                    header = b"Subject: %d\r\n\r\n" % uid
                    text = b"x" * text_size[uid]
                    peer.send(
                        b"* %d FETCH (UID %d FLAGS () RFC822.SIZE %d BODY[HEADER] {%d}\r\n%s"
                        b" BODY[TEXT]<0> {%d}\r\n%s)\r\n"
                        % (n, uid, len(header) + len(text), len(header), header, len(text), text)
                    )
            peer.send(tag + b" OK done\r\n")
            if words[:1] == [b"LOGOUT"]:
                return

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, ssl.create_default_context(), seconds=5)
        try:
            yield Upstream(client, 5.0)
        finally:
            await client.logout()


def _new_mail() -> NewMail:
    settings = EngineSettings(
        login="me",
        endpoint=parse_endpoint("imap://127.0.0.1:1", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(),  # body_prefix 64 KiB
        batches=(),
    )
    unused: Any = None  # _bodies reads nothing but the settings
    return NewMail(settings, unused, unused, {}, deque(), None, None, unused, "triage[me]")


async def test_small_messages_go_in_one_fetch_per_step_after_the_first_guess() -> None:
    asked: list[int] = []
    new_mail = _new_mail()
    async with _server(dict.fromkeys(range(1, 1001), 500), asked) as worker:
        first = await new_mail._bodies(worker, list(range(1, 501)))
        second = await new_mail._bodies(worker, list(range(501, 1001)))
    assert [f.uid for f in first + second] == list(range(1, 1001))
    assert len(first[0].text) == 500
    # 8 MiB over (64 KiB + 16 KiB) first; then the messages proved small: the rest at once.
    assert asked == [102, 398, 500]


async def test_big_messages_shrink_the_next_fetches() -> None:
    asked: list[int] = []
    new_mail = _new_mail()
    sizes = dict.fromkeys(range(1, 201), 500) | dict.fromkeys(range(201, 801), 64 << 10)
    async with _server(sizes, asked) as worker:
        await new_mail._bodies(worker, list(range(1, 201)))  # small: the guess grows to it all
        await new_mail._bodies(worker, list(range(201, 601)))
        fetched = await new_mail._bodies(worker, list(range(601, 801)))
    assert [f.uid for f in fetched] == list(range(601, 801))
    # 102 then 98 small ones; then 400 asked at once turn out big, and the next commands take
    # what fits: 8 MiB over their 64 KiB and 16 bytes of header, 127 messages.
    assert asked == [102, 98, 400, 127, 73]
