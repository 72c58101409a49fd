"""The notice in INBOX: replaced when the reason changes (the new one first), one at a time,
and a replacement a crash cut short finished by the next leave or remove."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast

import pytest

from commsproxy.triage.notice import NoticeBox
from commsproxy.triage.state_store import StateStore
from commsproxy.triage.upstream import Upstream

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
_MID = re.compile(rb"^Message-ID:\s+(<[^>]+>)", re.MULTILINE)  # folded when long


class Inbox:
    """What NoticeBox asks of the server, over one INBOX held in memory, with a record of the
    commands in order (to see that nothing expunges more than the notice)."""

    def __init__(self, *, uidplus: bool = True, fail_expunge: bool = False) -> None:
        self.messages: dict[int, tuple[str, bytes, set[str]]] = {}
        self.next_uid = 1
        self.uidplus = uidplus
        self.fail_expunge = fail_expunge
        self.calls: list[str] = []

    def has(self, capability: str) -> bool:
        return capability == "UIDPLUS" and self.uidplus

    async def select(self, mailbox: str) -> None:
        assert mailbox == "INBOX"

    async def search(self, criteria: str) -> list[int]:
        found = re.fullmatch(r'HEADER Message-ID "(<[^>]+>)"', criteria)
        assert found is not None, criteria
        return [uid for uid, (mid, _, _) in self.messages.items() if mid == found[1]]

    async def append(
        self, mailbox: str, text: bytes, flags: Sequence[str], when: datetime | None = None
    ) -> None:
        found = _MID.search(text)
        assert found is not None
        self.messages[self.next_uid] = (found[1].decode(), text, set(flags))
        self.calls.append(f"APPEND {self.next_uid}")
        self.next_uid += 1

    async def add_flags(self, uids: Sequence[int], flags: Sequence[str]) -> None:
        for uid in uids:
            self.messages[uid][2].update(flags)

    async def expunge_uids(self, uids: Sequence[int]) -> None:
        if self.fail_expunge:
            raise ConnectionResetError("killed before the expunge")
        for uid in uids:
            assert "\\Deleted" in self.messages[uid][2]
            del self.messages[uid]
            self.calls.append(f"EXPUNGE {uid}")

    def notices(self) -> list[str]:
        """The bodies of the notices not marked deleted."""
        return [
            _body(text) for _, text, flags in self.messages.values() if "\\Deleted" not in flags
        ]


def _body(text: bytes) -> str:
    message = BytesParser(policy=policy.default).parsebytes(text)
    assert isinstance(message, EmailMessage)
    return message.get_content()  # type: ignore[no-any-return]


def box(store: StateStore) -> NoticeBox:
    times = iter(T0 + timedelta(seconds=n) for n in range(1000))
    return NoticeBox(store, "me@example.com", lambda: next(times))


async def test_a_new_reason_replaces_the_notice_new_one_first(tmp_path: Path) -> None:
    inbox = Inbox()
    up = cast(Upstream, inbox)
    inbox.messages[99] = ("<mine@x>", b"", {"\\Deleted"})  # the user's own deleted mail
    with StateStore.open(tmp_path) as store:
        notices = box(store)
        await notices.leave(up, "the server refused the login", "check the password")
        await notices.leave(up, "the server refused the login", "check the password")
        assert len(inbox.notices()) == 1
        first = store.notice("me@example.com")
        assert first is not None

        await notices.leave(up, "CREATE Later: NO [CANNOT] invalid", "rename the batch")
        assert inbox.calls == ["APPEND 1", "APPEND 2", "EXPUNGE 1"]  # new first, old after
        (text,) = inbox.notices()
        assert "CREATE Later" in text
        now = store.notice("me@example.com")
        assert now is not None
        assert (now.reason, now.replaces) == ("CREATE Later: NO [CANNOT] invalid", None)
        assert now.message_id != first.message_id
        assert 99 in inbox.messages  # only the notice was expunged

        await notices.remove(up)
        assert inbox.notices() == []
        assert list(inbox.messages) == [99]
        assert store.notice("me@example.com") is None


async def test_a_replacement_cut_short_is_finished_once(tmp_path: Path) -> None:
    inbox = Inbox(fail_expunge=True)
    up = cast(Upstream, inbox)
    with StateStore.open(tmp_path) as store:
        notices = box(store)
        await notices.leave(up, "refused", "check the password")
        with pytest.raises(ConnectionResetError):
            await notices.leave(up, "a step refused", "fix it")
        cut = store.notice("me@example.com")
        assert cut is not None
        assert cut.replaces is not None  # the old one is still named
        # Next try, same reason: nothing appended again; the old one goes.
        inbox.fail_expunge = False
        await notices.leave(up, "a step refused", "fix it")
        assert inbox.calls == ["APPEND 1", "APPEND 2", "EXPUNGE 1"]
        after = store.notice("me@example.com")
        assert after is not None
        assert after.replaces is None


async def test_remove_takes_out_a_notice_and_the_one_it_was_replacing(tmp_path: Path) -> None:
    inbox = Inbox(fail_expunge=True)
    up = cast(Upstream, inbox)
    with StateStore.open(tmp_path) as store:
        notices = box(store)
        await notices.leave(up, "refused", "check the password")
        with pytest.raises(ConnectionResetError):
            await notices.leave(up, "a step refused", "fix it")
        inbox.fail_expunge = False
        await notices.remove(up)
        assert inbox.messages == {}
        assert store.notice("me@example.com") is None


async def test_a_planned_notice_never_appended_takes_the_new_reason(tmp_path: Path) -> None:
    inbox = Inbox()
    up = cast(Upstream, inbox)
    with StateStore.open(tmp_path) as store:
        store.plan_notice("me@example.com", "lost@commsproxy.localhost", "old", T0)
        await box(store).leave(up, "new", "do this")
        (text,) = inbox.notices()
        assert "new. What to do: do this." in text
        notice = store.notice("me@example.com")
        assert notice is not None
        assert (notice.reason, notice.replaces) == ("new", None)
        assert notice.appended is not None


async def test_without_uidplus_the_old_notice_stays_marked_deleted(tmp_path: Path) -> None:
    inbox = Inbox(uidplus=False)
    up = cast(Upstream, inbox)
    with StateStore.open(tmp_path) as store:
        notices = box(store)
        await notices.leave(up, "refused", "check the password")
        await notices.leave(up, "a step refused", "fix it")
        assert len(inbox.notices()) == 1  # the old one: \Seen \Deleted, for the user's expunge
        assert inbox.messages[1][2] >= {"\\Seen", "\\Deleted"}
