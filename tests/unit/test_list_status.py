"""Upstream.statuses: one LIST-STATUS (RFC 5819) for many mailboxes where the server offers
it, one STATUS each otherwise; a mailbox that is not there is left out, never an error."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Callable

from commsproxy.triage.upstream import Upstream
from commsproxy.upstream import connect

from .imap_server import Peer, scripted_server

ITEMS = "(MESSAGES UIDNEXT UIDVALIDITY)"

Answer = Callable[[str, bytes], bytes]  # (tag, command line) -> the server's whole answer


@contextlib.asynccontextmanager
async def _upstream(
    capabilities: str, answer: Answer, seen: list[bytes]
) -> AsyncIterator[Upstream]:
    async def script(peer: Peer) -> None:
        while True:
            message = await peer.message()
            tag, _, rest = message.partition(b" ")
            if rest.upper().startswith(b"LOGOUT"):
                peer.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                continue
            seen.append(message)
            peer.send(answer(tag.decode(), rest))

    greeting = f"* OK [CAPABILITY IMAP4rev1 LITERAL+ {capabilities}] hi\r\n".encode()
    async with scripted_server(script, greeting=greeting) as served:
        client = await connect(served.endpoint, ssl.create_default_context(), seconds=5)
        try:
            yield Upstream(client, 5.0)
        finally:
            await client.logout()


def _dovecot_like(tag: str, rest: bytes) -> bytes:
    """LIST-STATUS as Dovecot answers it; STATUS of Tomorrow and Monday (no Gone)."""
    boxes = {b"Snoozed/Tomorrow": b"(MESSAGES 2 UIDNEXT 9 UIDVALIDITY 7)",
             b"Snoozed/Monday": b"(MESSAGES 0 UIDNEXT 1 UIDVALIDITY 8)"}  # fmt: skip
    if rest.startswith(b"LIST"):
        out = b""
        for name, status in boxes.items():
            if b'"' + name + b'"' in rest:
                out += b'* LIST (\\HasNoChildren) "/" ' + name + b"\r\n"
                out += b"* STATUS " + name + b" " + status + b"\r\n"
        return out + tag.encode() + b" OK List completed.\r\n"
    if rest.startswith(b"STATUS"):
        for name, status in boxes.items():
            if rest.startswith(b'STATUS "' + name + b'"'):
                line = b'* STATUS "' + name + b'" ' + status + b"\r\n"
                return line + tag.encode() + b" OK Status completed.\r\n"
        return tag.encode() + b" NO [NONEXISTENT] Mailbox doesn't exist\r\n"
    return tag.encode() + b" BAD what\r\n"


NAMES = ["Snoozed/Tomorrow", "Snoozed/Gone", "Snoozed/Monday"]
EXPECTED = {
    "Snoozed/Tomorrow": {"MESSAGES": 2, "UIDNEXT": 9, "UIDVALIDITY": 7},
    "Snoozed/Monday": {"MESSAGES": 0, "UIDNEXT": 1, "UIDVALIDITY": 8},
}


async def test_list_status_asks_for_every_mailbox_in_one_command() -> None:
    seen: list[bytes] = []
    async with _upstream("LIST-EXTENDED LIST-STATUS", _dovecot_like, seen) as upstream:
        assert await upstream.statuses(NAMES, ITEMS) == EXPECTED
    assert seen == [
        b't1 LIST "" ("Snoozed/Tomorrow" "Snoozed/Gone" "Snoozed/Monday")'
        b" RETURN (STATUS (MESSAGES UIDNEXT UIDVALIDITY))\r\n"
    ]


async def test_without_list_status_one_status_each_and_a_refusal_leaves_the_box_out() -> None:
    seen: list[bytes] = []
    async with _upstream("", _dovecot_like, seen) as upstream:
        assert await upstream.statuses(NAMES, ITEMS) == EXPECTED
    assert [line.split(b" ")[1] for line in seen] == [b"STATUS"] * 3


async def test_list_status_offered_but_refused_falls_back_to_status_for_good() -> None:
    def refuses_list(tag: str, rest: bytes) -> bytes:
        if rest.startswith(b"LIST"):
            return tag.encode() + b" BAD Unknown RETURN option\r\n"
        return _dovecot_like(tag, rest)

    seen: list[bytes] = []
    async with _upstream("LIST-STATUS", refuses_list, seen) as upstream:
        assert await upstream.statuses(NAMES, ITEMS) == EXPECTED
        assert await upstream.statuses(NAMES, ITEMS) == EXPECTED
    commands = [line.split(b" ")[1] for line in seen]
    assert commands == [b"LIST"] + [b"STATUS"] * 6  # the LIST once, never again


async def test_no_mailboxes_asks_nothing() -> None:
    seen: list[bytes] = []
    async with _upstream("LIST-STATUS", _dovecot_like, seen) as upstream:
        assert await upstream.statuses([], ITEMS) == {}
    assert seen == []
