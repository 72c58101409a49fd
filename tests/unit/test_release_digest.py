"""The Releaser's digest step with a fake worker: what it reads, what it appends, and a bug."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.config import BatchConfig, TriageConfig
from commsproxy.imap.responses import Fetched
from commsproxy.schedule import Schedule
from commsproxy.triage.release import Releaser
from commsproxy.triage.state_store import Decision, StateStore

NOW = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)
BATCH = BatchConfig("later", "Later", ("normal",), Schedule((), frozenset(), ZoneInfo("UTC")))


def raw(uid: int, sender: str, subject: str, body: str) -> tuple[bytes, bytes]:
    header = (
        f"From: {sender}\r\nTo: me@corp.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <m{uid}@x.example>\r\n\r\n"
    ).encode()
    return header, body.encode()


class Worker:
    """Answers FETCH from a fixed set of messages and records APPENDs and what was fetched."""

    def __init__(self, messages: dict[int, tuple[bytes, bytes]]) -> None:
        self.messages = messages
        self.fetched: list[tuple[list[int], str]] = []
        self.appended: list[tuple[str, bytes, tuple[str, ...], datetime | None]] = []

    async def fetch(self, uids: Sequence[int], items: str) -> list[Fetched]:
        self.fetched.append((sorted(uids), items))
        out = []
        for uid in sorted(uids):
            header, text = self.messages[uid]
            body = text if "TEXT" in items else b""
            arrived = f"07-Dec-2026 10:0{uid % 10}:00 +0000"
            out.append(Fetched(uid, frozenset(), None, header, body, arrived))
        return out

    async def append(
        self, mailbox: str, message: bytes, flags: Iterable[str], when: datetime | None = None
    ) -> None:
        self.appended.append((mailbox, message, tuple(flags), when))


@pytest.fixture
def store(tmp_path: Path) -> Iterable[StateStore]:
    with StateStore.open(tmp_path) as opened:
        yield opened


def releaser(worker: Worker, store: StateStore, **options: object) -> Releaser:
    return Releaser(
        worker, store, "me@corp.example", {"later": "Later"}, TriageConfig(), lambda: NOW,
        **options,  # type: ignore[arg-type]
    )  # fmt: skip


def decided(store: StateStore, uid: int, label: str, reason: str) -> None:
    store.record_decisions(
        [
            Decision(
                "me@corp.example",
                "INBOX",
                1,
                uid,
                f"<m{uid}@x.example>",
                label,
                0.01,
                reason,
                "later",
                True,
                "",
                "",
                NOW,
            )
        ]
    )


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


async def test_the_digest_is_appended_unread_dated_at_the_release(store: StateStore) -> None:
    worker = Worker({
        1: raw(1, "ann@acme.example", "notes", "See you."),
        2: raw(2, "bob@acme.example", "Server down", "The shop is down, call me back today."),
        3: raw(3, "news@list.example", "Weekly", "Unsubscribe here."),
    })  # fmt: skip
    decided(store, 1, "normal", "normal (0.01, urgent from 0.04): held: a reply")
    decided(store, 3, "normal", "normal (0.01, urgent from 0.04): held: has List-Unsubscribe")
    link = releaser(worker, store, digest_link=lambda a: f"http://127.0.0.1:1180/c?s={a}")
    await link._append_digest(BATCH, [1, 2, 3], "<digest-x@commsproxy.localhost>", NOW)
    [(mailbox, data, flags, when)] = worker.appended
    assert mailbox == "INBOX"
    assert "\\Seen" not in flags
    assert {"$Released", "$Triaged", "$Digest"} <= set(flags)
    assert when == NOW
    text = parsed(data).get_body(preferencelist=("plain",))
    assert text is not None
    lines = str(text.get_content()).splitlines()
    items = [line for line in lines if line.startswith("* ")]
    assert items[0] == "* bob@acme.example: Server down"  # by hand, and says it is urgent
    assert "  Why it waited: a reply in a conversation" in lines
    assert any("http://127.0.0.1:1180/c?s=ann@acme.example" in line for line in lines)
    # Headers of all, the body only of what may say it is urgent (every one here: no markers).
    assert worker.fetched[0] == ([1, 2, 3], "(UID INTERNALDATE BODY.PEEK[HEADER])")
    assert all("PEEK" in items for _, items in worker.fetched)


async def test_a_bug_in_the_digest_releases_without_it(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    worker = Worker({1: raw(1, "ann@acme.example", "notes", "See you.")})

    def broken(address: str) -> str:
        raise RuntimeError("a bug")

    await releaser(worker, store, digest_link=broken)._append_digest(
        BATCH, [1], "<digest-y@commsproxy.localhost>", NOW
    )
    assert worker.appended == []
    assert "the digest of later failed; releasing without" in caplog.text
