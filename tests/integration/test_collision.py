"""No double replies in the team: two colleagues, each behind their own proxy, answer the same
customer question.

alice (``collision = "warn"``, the default) and bob (``"hold"``) are users of the real Dovecot;
their configs name the same customer account, whose folder lives in the public namespace. bob's
proxy reaches IMAP through a FaultHop, so one test can cut the link his check looks with. Mail
reaches them through LMTP; what they send goes through their proxy, Dovecot's submission, and
the relay target, which records what left.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import imaplib
import re
import smtplib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from tests.integration.test_filing import (
    TEAM_DOMAIN,
    Member,
    accounts_table,
    customer_mail,
    deliver_to,
    folder_ids,
)
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.faulthop import FaultHop
from tests.testbed.triage import census, fetch_fields, wait_until

DRAFTS = "Drafts/Collision"


class _Stall:
    """A TCP hop that, once armed, holds back the client's bytes from the first chunk that
    matches a pattern until ``resume``: a server that stops answering."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.pattern: bytes | None = None
        self.go = asyncio.Event()
        self.go.set()
        self.port = 0
        self._links: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        self._links += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, check: bool) -> None:
            while data := await src.read(65536):
                if check and self.pattern is not None and re.search(self.pattern, data, re.M):
                    self.pattern = None
                    self.go.clear()
                if check:
                    await self.go.wait()
                dst.write(data)
                await dst.drain()
            dst.close()

        with contextlib.suppress(OSError):
            await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False))

    async def close(self) -> None:
        self.go.set()
        self._server.close()
        for link in self._links:
            link.close()


class _Hop:
    """Dovecot's IMAP behind a FaultHop (cuts) behind a _Stall, on their own loop thread."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.hop = FaultHop("127.0.0.1", dovecot.imap_port)
        asyncio.run_coroutine_threadsafe(self.hop.start(), self.loop).result(10)
        self.stall = _Stall(self.hop.port)
        asyncio.run_coroutine_threadsafe(self.stall.start(), self.loop).result(10)

    @property
    def port(self) -> int:
        return self.stall.port

    def arm(self, pattern: bytes) -> None:
        self.loop.call_soon_threadsafe(self.hop.arm, pattern, "before", 1)

    def hold(self, pattern: bytes) -> None:
        self.loop.call_soon_threadsafe(setattr, self.stall, "pattern", pattern)

    def resume(self) -> None:
        self.loop.call_soon_threadsafe(self.stall.go.set)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.stall.close(), self.loop).result(10)
        asyncio.run_coroutine_threadsafe(self.hop.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def pair(
    dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Member, Member, _Hop]]:
    account = f"Acme {uuid.uuid4().hex[:8]}"
    base = tmp_path_factory.mktemp("collision")
    alice = Member(dovecot, base / "alice", account, accounts_table(account))
    bob = Member(dovecot, base / "bob", account, accounts_table(account))
    users = f'share_with = ["{alice.user}", "{bob.user}"]'
    alice.write_config(accounts_table(account, extra=users))
    bob.write_config(accounts_table(account, extra=f'{users}\ncollision = "hold"'))
    hop = _Hop(dovecot)
    text = bob.config.read_text(encoding="utf-8")
    bob.config.write_text(
        text.replace(f"127.0.0.1:{dovecot.imap_port}", f"127.0.0.1:{hop.port}"), encoding="utf-8"
    )
    try:
        alice.start()
        bob.start()
        yield alice, bob, hop
    finally:
        alice.stop()
        bob.stop()
        hop.close()


def _id() -> str:
    return f"<{uuid.uuid4().hex}@acme.example>"


def _folder(member: Member) -> str:
    return f"Public/Accounts/{member.account}"


def _question(dovecot: Dovecot, pair: tuple[Member, Member, _Hop]) -> str:
    """A customer question to both, triaged by both proxies."""
    alice, bob, _ = pair
    question = _id()
    deliver_to(dovecot, [alice.user, bob.user], customer_mail(question, [alice, bob]))
    assert wait_until(lambda: "$Triaged" in alice.flags(question), 20)
    assert wait_until(lambda: "$Triaged" in bob.flags(question), 20)
    return question


def _reply(member: Member, name: str, question: str, now: datetime) -> tuple[str, bytes]:
    reply = f"<{uuid.uuid4().hex}@{TEAM_DOMAIN}>"
    headers = {
        "From": f"{name} <{member.address}>",
        "To": "ceo@acme.example",
        "Subject": "Re: Question about our order",
        "Date": format_datetime(now),
        "Message-ID": reply,
        "In-Reply-To": question,
        "References": question,
    }
    return reply, render(headers, f"{name} here: it ships on Monday.")


def _send(member: Member, message: bytes) -> float:
    """Send as ``member``; the seconds the proxy took. Raises what smtplib raises."""
    assert member.proxy is not None
    with smtplib.SMTP("127.0.0.1", member.proxy.smtp_port, timeout=30) as smtp:
        smtp.login(member.user, member.password)
        started = time.monotonic()
        smtp.sendmail(member.address, ["ceo@acme.example"], message)
        return time.monotonic() - started


def _left(dovecot: Dovecot, message_id: str) -> int:
    return sum(message_id.encode() in m.content for m in dovecot.relay.captured())


def _answered_first(
    dovecot: Dovecot, member: Member, name: str, question: str
) -> tuple[str, datetime]:
    """``member`` answers ``question``; once their reply is in the account folder."""
    now = datetime.now(UTC)
    reply, message = _reply(member, name, question, now)
    _send(member, message)
    assert wait_until(lambda: folder_ids(dovecot, member.user, _folder(member))[reply] == 1, 20)
    return reply, now


def test_hold_refuses_with_who_and_when_keeps_a_draft_and_a_resend_goes(
    dovecot: Dovecot, pair: tuple[Member, Member, _Hop]
) -> None:
    alice, bob, _ = pair
    question = _question(dovecot, pair)
    _, answered = _answered_first(dovecot, alice, "Alice Peeters", question)
    late, message = _reply(bob, "Bob", question, datetime.now(UTC))
    with pytest.raises(smtplib.SMTPDataError) as refused:
        _send(bob, message)
    assert refused.value.smtp_code == 550
    text = refused.value.smtp_error.decode()
    assert text.startswith("5.7.1 Not sent: Alice Peeters <")
    assert f"{alice.address}> answered this thread at {answered:%H:%M}." in text
    assert "kept in Drafts/Collision; send it again within 10 minutes" in text
    assert _left(dovecot, late) == 0
    drafts = [r for r in fetch_fields(dovecot, bob.user, DRAFTS, "flags hdr.message-id")
              if r.get("hdr.message-id") == late]  # fmt: skip
    assert len(drafts) == 1
    assert {"\\Draft", "\\Seen"} <= set(drafts[0]["flags"].split())
    # The same reply again, within ten minutes: it goes.
    _send(bob, message)
    assert wait_until(lambda: _left(dovecot, late) == 1, 10)
    assert census(dovecot, bob.user, (DRAFTS,))[late] == 1  # the draft stays: nothing deleted


def test_warn_sends_and_leaves_a_notice_in_inbox(
    dovecot: Dovecot, pair: tuple[Member, Member, _Hop]
) -> None:
    alice, bob, _ = pair
    question = _question(dovecot, pair)
    _, answered = _answered_first(dovecot, bob, "Bob Janssens", question)
    late, message = _reply(alice, "Alice", question, datetime.now(UTC))
    _send(alice, message)
    assert wait_until(lambda: _left(dovecot, late) == 1, 10)
    subject = (
        f"Bob Janssens answered this thread too, at {answered:%H:%M}: Re: Question about our order"
    )

    def notice() -> list[tuple[str, set[str]]]:
        """(subject, flags) of the notices in alice's INBOX."""
        with imaplib.IMAP4("127.0.0.1", dovecot.imap_port) as imap:
            imap.login(alice.user, alice.password)
            imap.select("INBOX", readonly=True)
            _, found = imap.uid("SEARCH", "HEADER", "Subject", '"answered this thread too"')
            out = []
            for uid in found[0].split():
                _, data = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                head = data[0]
                assert isinstance(head, tuple)
                header = email.message_from_bytes(head[1])
                flags = re.search(rb"FLAGS \(([^)]*)\)", head[0])
                assert flags is not None
                text = " ".join(str(header["Subject"]).split())
                out.append((text, set(flags.group(1).decode().split())))
            return out

    assert wait_until(lambda: len(notice()) == 1, 10)
    ((found, flags),) = notice()
    assert found == subject
    assert {"$Triaged", "$NotHeld"} <= flags
    time.sleep(0.5)  # the next pass leaves it alone: still in INBOX, not held
    assert len(notice()) == 1


def test_a_reply_nobody_else_gave_is_sent_at_once(
    dovecot: Dovecot, pair: tuple[Member, Member, _Hop]
) -> None:
    _, bob, _ = pair
    question = _question(dovecot, pair)
    assert bob.proxy is not None
    found_before = bob.proxy.log_text().count(" already (hold)")
    reply, message = _reply(bob, "Bob", question, datetime.now(UTC))
    took = _send(bob, message)
    assert _left(dovecot, reply) == 1
    assert took < 2.0  # the look is a few commands on the engine's live link
    assert bob.proxy.log_text().count(" already (hold)") == found_before


def test_an_answer_filed_before_the_users_copy_came_does_not_count(
    dovecot: Dovecot, pair: tuple[Member, Member, _Hop]
) -> None:
    alice, bob, _ = pair
    question = _id()
    deliver_to(dovecot, [alice.user], customer_mail(question, [alice, bob]))
    assert wait_until(lambda: "$Triaged" in alice.flags(question), 20)
    _answered_first(dovecot, alice, "Alice Peeters", question)
    time.sleep(1.1)  # INTERNALDATE counts whole seconds: bob's copy comes a second later
    deliver_to(dovecot, [bob.user], customer_mail(question, [alice, bob]))  # forwarded late
    assert wait_until(lambda: "$Triaged" in bob.flags(question), 20)
    reply, message = _reply(bob, "Bob", question, datetime.now(UTC))
    _send(bob, message)
    assert _left(dovecot, reply) == 1


def test_a_look_that_cannot_reach_the_server_lets_the_reply_go(
    dovecot: Dovecot, pair: tuple[Member, Member, _Hop]
) -> None:
    alice, bob, hop = pair
    question = _question(dovecot, pair)
    _answered_first(dovecot, alice, "Alice Peeters", question)
    late, message = _reply(bob, "Bob", question, datetime.now(UTC))
    hop.arm(rb"^\S+ UID SEARCH OR OR HEADER In-Reply-To ")  # bob's look loses its link
    _send(bob, message)
    assert _left(dovecot, late) == 1
    assert bob.proxy is not None
    log = bob.proxy.log_text()
    assert re.search(r"collision\[\w+\]: the look failed, sent without it: .*connection lost", log)
    assert census(dovecot, bob.user, (DRAFTS,))[late] == 0


def test_a_look_that_takes_too_long_lets_the_reply_go_after_the_bound(
    dovecot: Dovecot, pair: tuple[Member, Member, _Hop]
) -> None:
    alice, bob, hop = pair
    assert bob.proxy is not None
    log = bob.proxy.log_text
    # After the cut of the test before, bob's triage is connected again.
    assert wait_until(lambda: "watching INBOX" in log().split("the look failed")[-1], 30)
    question = _question(dovecot, pair)
    _answered_first(dovecot, alice, "Alice Peeters", question)
    late, message = _reply(bob, "Bob", question, datetime.now(UTC))
    hop.hold(rb"^\S+ UID SEARCH OR OR HEADER In-Reply-To ")  # the server stops answering bob
    try:
        took = _send(bob, message)
    finally:
        hop.resume()
    assert _left(dovecot, late) == 1
    assert 3.0 <= took < 6.0
    assert "the check before sending took over 3 s; sent without it" in log()
