"""The Today page shows what waits for later besides held mail, from a real state store:
snoozed mail (soonest back first, with its box, sender and subject; what came back today),
sent mail that came back today without an answer, a quiet batch's window while it runs, and
today's sla deliveries and auto-replies (only when there are some). Everything is escaped."""

from __future__ import annotations

import html
import re
from datetime import UTC, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from commsproxy.config import Config
from commsproxy.triage.state_store import AutoReply, Decision, FollowUp, SlaDue, StateStore
from commsproxy.web import access
from commsproxy.web.app import PageContext, make_app
from commsproxy.web.facts_today import LoginToday, today_facts
from tests.unit.test_web_pages import HOST, LOGIN, NOW, PORT, _config

YESTERDAY = NOW - timedelta(days=1)


def _quiet_config() -> Config:
    """A quiet batch whose window (in UTC) runs from an hour before NOW to two hours after."""
    start = (NOW - timedelta(hours=1)).astimezone(UTC).strftime("%H:%M")
    end = (NOW + timedelta(hours=2)).astimezone(UTC).strftime("%H:%M")
    batches = f"""
[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal", "bulk"]
release = ["17:00"]
days = "daily"
timezone = "UTC"

[[batch]]
name = "evening"
mailbox = "Evening"
quiet = "{start}-{end}"
days = "daily"
timezone = "UTC"
"""
    return _config(batches)


def fill(store: StateStore) -> None:
    # Three snoozed, noticed in two boxes; one described as snooze.py describes it, one only
    # known by its Message-ID (triage decided about it), one with nothing known.
    store.note_snoozed(
        LOGIN,
        "Snoozed/Next week",
        "Next week",
        5,
        [(1, "<far@x>")],
        NOW - timedelta(hours=2),
        NOW + timedelta(days=7),
    )
    store.note_snoozed(
        LOGIN,
        "Snoozed/Tomorrow",
        "Tomorrow",
        7,
        [(3, "<soon@x>"), (4, "<known@x>"), (5, None)],
        NOW - timedelta(hours=1),
        NOW + timedelta(hours=20),
    )
    store.describe_snoozed(
        LOGIN, "Snoozed/Tomorrow", 7, [(3, "Ann <ann@client.example>", "Offer <b>final</b>")]
    )
    store.describe_snoozed(LOGIN, "Snoozed/Next week", 5, [(1, "zed@far.example", "Later on")])
    store.record_decisions(
        [
            Decision(
                LOGIN,
                "INBOX",
                1,
                9,
                "known@x",
                "normal",
                0.1,
                "normal",
                None,
                False,
                "kim@known.example",
                "Known subject",
                NOW - timedelta(hours=3),
            ),
        ]
    )
    # Another login's snooze is not this login's.
    store.note_snoozed(
        "other",
        "Snoozed/Tomorrow",
        "Tomorrow",
        7,
        [(3, "<theirs@x>")],
        NOW,
        NOW + timedelta(hours=1),
    )
    # One came back this morning, one yesterday.
    store.note_snoozed(
        LOGIN,
        "Snoozed/In 2 hours",
        "In 2 hours",
        8,
        [(1, "<back@x>"), (2, None)],
        NOW - timedelta(hours=5),
        NOW - timedelta(hours=3),
    )
    store.describe_snoozed(
        LOGIN,
        "Snoozed/In 2 hours",
        8,
        [(1, "bo@back.example", "Back again"), (2, "old@x", "Old return")],
    )
    ids = {s.uid: s.id for s in store.snoozed(LOGIN) if s.box == "In 2 hours"}
    store.set_snooze_state(ids[1], "returned", NOW - timedelta(hours=3))
    store.set_snooze_state(ids[2], "returned", YESTERDAY)
    # Follow-ups: one waiting, one that came back today, one yesterday.
    for mid in ("wait@x", "today@x", "old@x"):
        store.watch_followup(
            FollowUp(
                LOGIN,
                mid,
                ("cy@client.example",),
                f"Re: {mid}",
                NOW - timedelta(days=4),
                NOW + timedelta(days=1),
                "waiting",
            )
        )
    store.followup_state(LOGIN, "today@x", "returned", NOW - timedelta(hours=4))
    store.followup_state(LOGIN, "old@x", "returned", YESTERDAY)
    # sla: two delivered today, one yesterday, one released today.
    store.note_sla(
        SlaDue(LOGIN, f"sla{n}@x", "later", "Acme", "1h", NOW - timedelta(days=2), NOW)
        for n in range(4)
    )
    pending = store.sla_pending(LOGIN)
    for entry, (state, at) in zip(
        pending,
        [
            ("delivered", NOW - timedelta(hours=1)),
            ("delivered", NOW),
            ("delivered", YESTERDAY),
            ("released", NOW),
        ],
        strict=True,
    ):
        store.set_sla_state(entry.id, state, at)
    # Auto-replies: three sent today, one yesterday, one that failed today.
    for n in range(5):
        store.queue_autoreply(
            AutoReply(
                LOGIN,
                f"p{n}@out.example",
                "d",
                None,
                (),
                "s",
                "later",
                NOW + timedelta(hours=5),
                NOW - timedelta(hours=6),
            )
        )
    queued = store.autoreplies(LOGIN, "queued")
    ends = [
        ("sent", NOW),
        ("sent", NOW - timedelta(hours=1)),
        ("sent", NOW - timedelta(hours=2)),
        ("sent", YESTERDAY),
        ("failed", NOW),
    ]
    for reply, (state, at) in zip(queued, ends, strict=True):
        store.set_autoreply(reply.id, state, at, 1, at)


def _login(store: StateStore, tmp_path: Path, config: Config | None = None) -> LoginToday:
    logins = today_facts(config or _config(), store, tmp_path, NOW, pid=1).logins
    return {login.login: login for login in logins}[LOGIN]


def test_snoozed_soonest_first_with_box_sender_and_subject(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        fill(store)
        login = _login(store, tmp_path)
    assert [(s.message_id, s.box, s.sender, s.subject) for s in login.snoozed] == [
        ("soon@x", "Tomorrow", "Ann <ann@client.example>", "Offer <b>final</b>"),
        ("known@x", "Tomorrow", "kim@known.example", "Known subject"),  # from the decision
        (None, "Tomorrow", "", ""),
        ("far@x", "Next week", "zed@far.example", "Later on"),
    ]
    assert login.snoozed[0].due == NOW + timedelta(hours=20)
    assert login.snoozed_count == 4
    # Back today: this morning's only, with when it came.
    assert [(s.message_id, s.subject, s.back_at) for s in login.snoozed_back] == [
        ("back@x", "Back again", NOW - timedelta(hours=3))
    ]


def test_describing_twice_keeps_the_first_description(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        fill(store)
        store.describe_snoozed(LOGIN, "Snoozed/Tomorrow", 7, [(3, "someone@else", "changed")])
        (first, *_) = store.snoozed(LOGIN)
    assert (first.sender, first.subject) == ("Ann <ann@client.example>", "Offer <b>final</b>")


def test_came_back_today_sla_and_autoreplies_count_today_only(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        fill(store)
        login = _login(store, tmp_path)
    assert [w.message_id for w in login.waiting] == ["wait@x"]
    assert [(w.message_id, w.returned_at) for w in login.came_back] == [
        ("today@x", NOW - timedelta(hours=4))
    ]
    assert login.sla_delivered == 2
    assert login.autoreplies_sent == 3
    assert login.quiet_until is None  # no quiet batch in this config


def test_quiet_until_while_the_window_runs(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        login = _login(store, tmp_path, _quiet_config())
        assert login.quiet_until == NOW + timedelta(hours=2)
        later = today_facts(_quiet_config(), store, tmp_path, NOW + timedelta(hours=3), pid=1)
    assert later.logins[0].quiet_until is None


async def _today(tmp_path: Path, store: StateStore, config: Config) -> str:
    secret = access.load_or_create_secret(tmp_path)
    context = PageContext(lambda: config, store, tmp_path, secret, PORT, None, lambda: NOW)
    client = TestClient(TestServer(make_app(context)))
    await client.start_server()
    try:
        await client.get(f"/?key={secret}", headers={"Host": HOST}, allow_redirects=False)
        answer = await client.get("/today", headers={"Host": HOST})
        assert answer.status == 200
        return await answer.text()
    finally:
        await client.close()


def _words(text: str) -> str:
    """What a reader sees of an HTML fragment: its text, tags left out, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]*>", "", text)).split())


async def test_today_page_shows_them_escaped(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        fill(store)
        text = await _today(tmp_path, store, _quiet_config())
    snoozed = text.split('<div class="snoozed">', 1)[1].split("</div>", 1)[0]
    assert "Snoozed <small>4</small>" in snoozed
    assert "Offer &lt;b&gt;final&lt;/b&gt;" in snoozed
    assert "<b>final" not in text
    assert "Ann &lt;ann@client.example&gt;" in snoozed
    due = (NOW + timedelta(hours=20)).strftime("%a %d %b %H:%M")
    words = _words(snoozed)
    assert f"Offer <b>final</b> from Ann <ann@client.example>: back on {due} (Tomorrow)" in words
    assert snoozed.index("soon@x") < snoozed.index("known@x") < snoozed.index("Later on")
    assert f"(no subject): back on {due} (Tomorrow)" in words  # the one nothing is known of
    back = (NOW - timedelta(hours=3)).strftime("%H:%M")
    assert f"Back in INBOX today Back again from bo@back.example: back at {back} (In 2 hours)" in (
        words
    )
    assert "theirs@x" not in text
    assert "Old return" not in text
    waiting = text.split('<div class="waiting">', 1)[1].split("</div>", 1)[0]
    assert "Waiting for an answer <small>1</small>" in waiting
    returned = (NOW - timedelta(hours=4)).strftime("%H:%M")
    assert (
        f"Came back today without an answer Re: today@x: sent to cy@client.example on "
        f"{(NOW - timedelta(days=4)).strftime('%a %d %b %H:%M')}, back in INBOX at {returned}"
    ) in _words(waiting)
    assert 'data-message-id="today@x"' in waiting
    assert "old@x" not in waiting
    quiet = (NOW + timedelta(hours=2)).strftime("%H:%M")
    assert f"Quiet until {quiet}: only urgent mail comes in" in _words(text)
    counts = _words(text.split('<p class="today-counts">', 1)[1].split("</p>", 1)[0])
    assert "Delivered at the account's sla today: 2" in counts
    assert "Auto-replies sent today: 3" in counts


async def test_nothing_of_it_shows_when_there_is_none(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        text = await _today(tmp_path, store, _config())
    for absent in (
        'class="snoozed"',
        'class="waiting"',
        "Quiet until",
        "today-counts",
        "sla today",
        "Auto-replies",
    ):
        assert absent not in text


def test_the_snooze_part_keeps_sender_and_subject_when_it_notices(tmp_path: Path) -> None:
    """What the page shows of a snoozed message is read from its header as it is noticed (a
    fake server; test_snooze_returns.py has the rest of the part's steps)."""
    from tests.unit.test_snooze_returns import BOX, Clock, FakeServer, part, run

    server = FakeServer()
    with StateStore.open(tmp_path) as store:
        snoozes = part(store, Clock(NOW))
        run(snoozes.start(server))
        header = (
            "From: =?utf-8?q?J=C3=B6rg?= <jorg@x.example>\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?="
        )
        server.boxes[BOX].add(set(), f"{header}\r\nMessage-ID: <g@x>\r\n\r\nHi.\r\n".encode())
        server.boxes[BOX].add(set(), b"Subject: no id, no sender\r\n\r\nHi.\r\n")
        run(snoozes.step(server))
        found = [(s.message_id, s.sender, s.subject) for s in store.snoozed("me")]
    assert found == [("g@x", "Jörg <jorg@x.example>", "Grüße"), (None, "", "no id, no sender")]
