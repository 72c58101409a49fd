"""The digest's "Waiting for an answer": back since the last release, due before the next."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from commsproxy.config import BatchConfig
from commsproxy.schedule import Schedule
from commsproxy.triage.digest import WAITING, Digest, arrange, digest_message
from commsproxy.triage.followup_digest import with_followups
from commsproxy.triage.state_store import FollowUp, StateStore

UTC_ZONE = ZoneInfo("UTC")
LOGIN = "me@example.org"
# Released at 09:00 and 16:00 UTC every day; this release is Tuesday's 16:00.
BATCH = BatchConfig(
    "later", "Later", ("normal",), Schedule.parse(["09:00", "16:00"], "daily", "UTC")
)
NOW = datetime(2026, 12, 8, 16, 0, tzinfo=UTC)


def watch(
    store: StateStore, mid: str, subject: str, due: datetime, to: str = "bob@x.example"
) -> None:
    sent = due - timedelta(days=3)
    assert store.watch_followup(FollowUp(LOGIN, mid, (to,), subject, sent, due, "waiting"))


def parts(digest: Digest) -> tuple[str, str]:
    data = digest_message(LOGIN, digest, NOW, "<d@commsproxy.localhost>")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    plain = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert html is not None
    return str(plain.get_content()), str(html.get_content())


def test_back_since_the_last_release_then_due_before_the_next(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        morning = store.start_release(LOGIN, "later", NOW.replace(hour=9), NOW.replace(hour=9))
        store.finish_release(morning, 3, NOW.replace(hour=9, minute=1))
        watch(store, "old@x", "Came back before", NOW - timedelta(hours=8))
        watch(store, "back@x", "Offer <b>", NOW - timedelta(hours=2))
        watch(store, "soon@x", "Invoice", NOW + timedelta(hours=10))
        watch(store, "later@x", "Next week", NOW + timedelta(days=5))
        watch(store, "done@x", "Answered", NOW + timedelta(hours=1))
        for mid, at in (("old@x", NOW - timedelta(hours=8)), ("back@x", NOW - timedelta(hours=2))):
            store.followup_state(LOGIN, mid, "returning")
            store.followup_state(LOGIN, mid, "returned", at)
        store.followup_answered(LOGIN, "done@x", "bob@x.example", NOW)
        # This release's own row is started, not finished: the previous one counts.
        store.start_release(LOGIN, "later", NOW, NOW)
        base = arrange([], "later", grouped=False)
        digest = with_followups(base, store, LOGIN, BATCH, NOW, UTC_ZONE)
    assert [(w.subject, w.came_back) for w in digest.waiting] == [
        ("Offer <b>", True),
        ("Invoice", False),
    ]
    text, html = parts(digest)
    assert f"\n{WAITING}\n{'-' * len(WAITING)}\n* Offer" in text.replace("\r\n", "\n")
    assert "* Offer <b>: sent to bob@x.example on Sat 05 Dec 14:00, came back to INBOX" in text
    assert "* Invoice: sent to bob@x.example on Sun 06 Dec 02:00, comes back to INBOX" in text
    assert "Wed 09 Dec 02:00" in text
    assert "Offer &lt;b&gt;" in html
    assert "<b>" not in html.replace("<body", "")  # escaped, never markup
    assert 'id="digest-waiting"' in html


def test_nothing_waiting_leaves_the_digest_as_it_was(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        base = arrange([], "later", grouped=False)
        assert with_followups(base, store, LOGIN, BATCH, NOW, UTC_ZONE) is base
    text, html = parts(base)
    assert WAITING not in text
    assert "digest-waiting" not in html


def test_a_batch_released_on_request_only_lists_what_came_back(tmp_path: Path) -> None:
    manual = BatchConfig("later", "Later", ("normal",), Schedule((), frozenset(), UTC_ZONE))
    with StateStore.open(tmp_path) as store:
        watch(store, "back@x", "Offer", NOW - timedelta(hours=2))
        watch(store, "soon@x", "Invoice", NOW + timedelta(hours=10))
        store.followup_state(LOGIN, "back@x", "returned", NOW - timedelta(hours=2))
        digest = with_followups(arrange([], "later", grouped=False), store, LOGIN, manual, NOW)
    assert [w.subject for w in digest.waiting] == ["Offer"]


def test_a_failure_leaves_the_digest_as_it_was(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.close()  # every read fails
    base = arrange([], "later", grouped=False)
    assert with_followups(base, store, LOGIN, BATCH, NOW, UTC_ZONE) is base
