"""The engine's Upstream on the wire: its safety rules and the commands aioimaplib could not send.

A move without MOVE is COPY, then ``\\Deleted`` and ``UID EXPUNGE`` of exactly the copied UIDs;
without UIDPLUS too, nothing is moved at all (a plain EXPUNGE is never sent). SETACL, EXAMINE
followed by a search, and APPEND with flags and a date go out as spelled here.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from commsproxy.triage.upstream import CommandRefused, Upstream, UpstreamImapError
from commsproxy.upstream import connect

from .imap_server import Peer, scripted_server


@contextlib.asynccontextmanager
async def _upstream(
    capabilities: str, answers: dict[str, bytes], seen: list[bytes]
) -> AsyncIterator[Upstream]:
    """An Upstream on a server answering each command name from ``answers`` (then OK)."""

    async def script(peer: Peer) -> None:
        while True:
            message = await peer.message()
            command = await _parse(message)
            if command[1] != "LOGOUT":
                seen.append(message)
            extra = answers.get(command[1], b"")
            peer.send(extra + command[0].encode() + b" OK done\r\n")

    greeting = f"* OK [CAPABILITY IMAP4rev1 LITERAL+ {capabilities}] hi\r\n".encode()
    async with scripted_server(script, greeting=greeting) as served:
        client = await connect(served.endpoint, ssl.create_default_context(), seconds=5)
        try:
            yield Upstream(client, 5.0)
        finally:
            await client.logout()


async def _parse(message: bytes) -> tuple[str, str]:
    tag, _, rest = message.partition(b" ")
    words = rest.split(None, 2)
    name = words[0].upper().decode()
    if name == "UID":
        name += " " + words[1].upper().decode()
    return tag.decode(), name


async def test_move_without_move_copies_then_expunges_exactly_those() -> None:
    seen: list[bytes] = []
    answers = {"UID COPY": b"* OK [COPYUID 7 3:4 10:11] Copied\r\n"}
    async with _upstream("UIDPLUS", answers, seen) as upstream:
        moved = await upstream.move([3, 4, 5], "Later")
    assert moved.uids == {3: 10, 4: 11}
    assert moved.gone == {5}  # COPYUID did not name it: another client removed it
    assert seen == [
        b't1 UID COPY 3:5 "Later"\r\n',
        b"t2 UID STORE 3:4 +FLAGS.SILENT (\\Deleted)\r\n",
        b"t3 UID EXPUNGE 3:4\r\n",
    ]


async def test_without_move_and_uidplus_nothing_is_moved() -> None:
    seen: list[bytes] = []
    async with _upstream("", {}, seen) as upstream:
        with pytest.raises(UpstreamImapError, match="neither MOVE nor UIDPLUS"):
            await upstream.move([1], "Later")
    assert seen == []  # not even the COPY


async def test_setacl_examine_search_and_append() -> None:
    seen: list[bytes] = []
    answers = {
        "EXAMINE": b"* 2 EXISTS\r\n* OK [UIDVALIDITY 9] ok\r\n",
        "UID SEARCH": b"* SEARCH 1 2\r\n",
        "APPEND": b"",
    }
    async with _upstream("UIDPLUS ACL", answers, seen) as upstream:
        await upstream.set_acl("Accounts/Acme Ltd", "bob", "lrs")
        info = await upstream.examine("Accounts/Müller")
        assert (info.exists, info.uidvalidity) == (2, 9)
        assert await upstream.search("ALL") == [1, 2]
        date = datetime(2026, 1, 2, 9, 5, tzinfo=UTC)
        await upstream.append("INBOX", b"Subject: x\r\n\r\nhi", ["$Released", "\\Seen"], date)
    assert seen == [
        b't1 SETACL "Accounts/Acme Ltd" "bob" lrs\r\n',
        b't2 EXAMINE "Accounts/M&APw-ller"\r\n',
        b"t3 UID SEARCH ALL\r\n",
        b't4 APPEND "INBOX" ($Released \\Seen) " 2-Jan-2026 09:05:00 +0000" {16+}\r\n'
        b"Subject: x\r\n\r\nhi\r\n",
    ]


@pytest.mark.parametrize(
    ("refusal", "created"),
    [
        (b"NO [ALREADYEXISTS] Mailbox already exists", True),  # made by someone meanwhile
        (b"NO [NOPERM] Permission denied", False),
    ],
)
async def test_create_refused(refusal: bytes, created: bool) -> None:
    seen: list[bytes] = []

    async def script(peer: Peer) -> None:
        while True:
            message = await peer.message()
            tag, name = await _parse(message)
            seen.append(message)
            answer = refusal if name == "CREATE" else b"OK done"
            peer.send(tag.encode() + b" " + answer + b"\r\n")

    async with scripted_server(script) as served:
        client = await connect(served.endpoint, ssl.create_default_context(), seconds=5)
        upstream = Upstream(client, 5.0)
        try:
            if created:
                assert await upstream.ensure_mailbox("Later") is True
            else:
                with pytest.raises(CommandRefused, match=r"CREATE Later: NO \[NOPERM\]") as no:
                    await upstream.ensure_mailbox("Later")
                assert no.value.code == "NOPERM"
        finally:
            await client.logout()
    names = [message.split()[1] for message in seen]
    assert names[:2] == [b"LIST", b"CREATE"]
    assert (b"SUBSCRIBE" in names) is created


async def test_the_selected_mailbox_count_follows_exists_and_expunge() -> None:
    """INBOX's size from the server's own news: no SEARCH ALL to count it."""
    seen: list[bytes] = []
    answers = {
        "SELECT": b"* 5 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 9] n\r\n",
        "NOOP": b"* 6 EXISTS\r\n",
        "UID MOVE": b"* OK [COPYUID 3 8 20] moved\r\n* 6 EXPUNGE\r\n",
        "UID SEARCH": b"* 2 EXPUNGE\r\n* 6 EXISTS\r\n* SEARCH 9\r\n",
    }
    async with _upstream("MOVE UIDPLUS", answers, seen) as upstream:
        assert upstream.exists is None
        info = await upstream.select("INBOX")
        assert (info.exists, info.uidvalidity, upstream.exists, upstream.arrivals) == (5, 7, 5, 1)
        await upstream.noop()
        assert (upstream.exists, upstream.arrivals) == (6, 2)
        await upstream.move([8], "Later")
        assert upstream.exists == 5
        assert await upstream.search("UID 9:*") == [9]
        assert (upstream.exists, upstream.arrivals) == (6, 3)
        assert upstream.sent == 4
        assert list(upstream.recent)[-1] == "UID SEARCH UID 9:*"
