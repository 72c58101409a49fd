"""The Accounts page from a real state store: what each filing kept (sender or recipients,
subject), who answered each message in, what waits and for how long, and rows filed before
any of that was kept, which say so."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from commsproxy.classifier.mail import parse_mail
from commsproxy.config import Config, parse_config_text
from commsproxy.triage.filed_about import MAX_CHARS, filed_about, mail_about
from commsproxy.triage.state_store import _MIGRATIONS, Filed, StateStore
from commsproxy.web import access
from commsproxy.web.app import PageContext, make_app
from commsproxy.web.facts_accounts import accounts_facts, waited

from .older_state_files import undo_migrations_from

PORT = 1180
HOST = f"127.0.0.1:{PORT}"
NOW = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
LOGIN = "me@example.com"


def _config() -> Config:
    return parse_config_text(
        Path("config.toml"),
        f"""
[[login]]
username = "{LOGIN}"
upstream_imap = "imaps://imap.example.com"

[accounts.acme]
name = "Acme"
domains = ["acme.example"]

[accounts.globex]
name = "Globex"
domains = ["globex.example"]
""",
    )


# -- what a filing keeps, from the message's header --------------------------------------------


def test_incoming_keeps_the_sender_and_the_decoded_subject() -> None:
    header = (
        b"From: =?utf-8?q?Wile_E=2E_Coyote?= <Wile@Acme.example>\r\n"
        b"To: me@example.com\r\n"
        b"Subject: =?utf-8?b?w4RuZGVydW5nIGRlciBCZXN0ZWxsdW5n?=\r\n\tnumber 7\r\n"
        b"\r\n"
        b"Subject: not a header, the body\r\n"
    )
    assert filed_about("incoming", header) == (
        "Wile E. Coyote <wile@acme.example>",
        "Änderung der Bestellung number 7",
    )


def test_outgoing_keeps_the_first_recipient_and_how_many_more() -> None:
    header = (
        b"From: Me <me@example.com>\r\n"
        b"To: Buyer <buyer@acme.example>, ops@acme.example\r\n"
        b"Cc: boss@acme.example, buyer@acme.example\r\n"
        b"Subject: Re: the order\r\n\r\n"
    )
    assert filed_about("outgoing", header) == ("buyer@acme.example and 2 more", "Re: the order")
    one = b"To: buyer@acme.example\r\nSubject: hi\r\n\r\n"
    assert filed_about("outgoing", one) == ("buyer@acme.example", "hi")
    only_cc = b"Cc: x@acme.example\r\n\r\n"
    assert filed_about("outgoing", only_cc) == ("x@acme.example", "")


def test_a_long_subject_is_bounded_and_a_message_without_header_keeps_nothing() -> None:
    peer, subject = filed_about("incoming", b"From: a@acme.example\r\nSubject: " + b"x" * 5000)
    assert peer == "a@acme.example"
    assert len(subject) == MAX_CHARS
    assert subject.endswith("…")
    assert filed_about("incoming", b"") == ("", "")
    assert filed_about("outgoing", b"\r\njust a body") == ("", "")


def test_a_parsed_message_keeps_the_same_as_its_header() -> None:
    message = (
        b"From: Buyer <buyer@acme.example>\r\nTo: me@example.com, x@acme.example\r\n"
        b"Subject: =?iso-8859-1?q?R=E9sum=E9?=\r\n\r\nFrom: body@acme.example\r\n"
    )
    for direction in ("incoming", "outgoing"):
        assert mail_about(direction, parse_mail(message)) == filed_about(direction, message)
    assert filed_about("outgoing", message) == ("me@example.com and 1 more", "Résumé")


def test_waited_in_words() -> None:
    assert waited(NOW - timedelta(minutes=7, seconds=59), NOW) == "7 min"
    assert waited(NOW - timedelta(hours=2, minutes=5), NOW) == "2 h 05 min"
    assert waited(NOW - timedelta(days=1, hours=3), NOW) == "1 day 3 h"
    assert waited(NOW - timedelta(days=3), NOW) == "3 days 0 h"
    assert waited(NOW + timedelta(minutes=5), NOW) == "0 min"  # a clock set back


# -- the store and the page ---------------------------------------------------------------------


def _filed(login: str, mid: str, account: str, direction: str, ago: timedelta,
           peer: str | None, subject: str | None) -> Filed:  # fmt: skip
    return Filed(login, mid, account, direction, "copied", "domain", NOW - ago, peer, subject)


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.open(tmp_path)
    hours, minutes = timedelta(hours=1), timedelta(minutes=1)
    store.record_filings(
        [
            _filed(LOGIN, "q1@x", "Acme", "incoming", 5 * hours,
                   "Wile E. Coyote <wile@acme.example>", "Rockets <b>late</b>"),
            _filed("alice", "a1@x", "Acme", "outgoing", 4 * hours,
                   "wile@acme.example and 1 more", "Re: Rockets late"),
            _filed(LOGIN, "q2@x", "Acme", "incoming", 2 * hours + 5 * minutes,
                   "Road Runner <rr@acme.example>", "Invoice 42"),
            _filed(LOGIN, "q3@x", "Acme", "incoming", 30 * minutes,
                   "wile@acme.example", ""),
            _filed(LOGIN, "g1@x", "Globex", "incoming", 3 * hours,
                   "hank@globex.example", "Hammock"),
            _filed(LOGIN, "g2@x", "Globex", "outgoing", 1 * hours,
                   "hank@globex.example", "Re: Hammock"),
        ]
    )  # fmt: skip
    return store


def test_kept_details_are_read_back_and_answers_follow_the_stated_reading(
    store: StateStore,
) -> None:
    assert store.filings_for_message_id("<a1@x>")[0].peer == "wile@acme.example and 1 more"
    acme, globex = accounts_facts(_config(), store)
    assert [(m.message_id, m.peer, m.subject) for m in acme.outgoing] == [
        ("a1@x", "wile@acme.example and 1 more", "Re: Rockets late")
    ]
    answered = {m.message_id: (m.answered_by, m.answered_at) for m in acme.incoming}
    assert answered == {
        "q3@x": (None, None),
        "q2@x": (None, None),
        "q1@x": ("alice", acme.outgoing[0].at),  # alice's message was the next one out
    }
    assert [(m.message_id, m.peer, m.subject) for m in acme.waiting] == [
        ("q3@x", "wile@acme.example", ""),
        ("q2@x", "Road Runner <rr@acme.example>", "Invoice 42"),
    ]
    assert acme.waiting[-1].waited(NOW) == "2 h 05 min"  # the oldest waiting
    assert acme.answered_by == ("alice",)
    assert globex.waiting == ()
    assert [m.answered_by for m in globex.incoming] == [LOGIN]


def _old_file(tmp_path: Path) -> Path:
    """A state file as the commsproxy before kept details left it, with one filing in."""
    with StateStore.open(tmp_path) as made:
        path = made.path
    kept_details = next(
        i for i, step in enumerate(_MIGRATIONS) if any("filings ADD COLUMN peer" in s for s in step)
    )
    undo_migrations_from(path, kept_details)
    older = sqlite3.connect(path)
    older.execute(
        "INSERT INTO filings (login, message_id, account, direction, outcome, reason, filed_at)"
        " VALUES (?, 'old@x', 'Acme', 'outgoing', 'appended', 'domain', ?)",
        (LOGIN, (NOW - timedelta(days=2)).isoformat()),
    )
    older.commit()
    older.close()
    return path


def test_a_file_from_before_keeps_its_filings_and_says_nothing_was_kept(tmp_path: Path) -> None:
    path = _old_file(tmp_path)
    with StateStore(path) as store:
        (old,) = store.recent_filings()
        assert (old.message_id, old.peer, old.subject) == ("old@x", None, None)
        store.record_filings([_filed(LOGIN, "new@x", "Acme", "incoming", timedelta(hours=1),
                                     "wile@acme.example", "New")])  # fmt: skip
        acme = accounts_facts(_config(), store)[0]
        assert [(m.message_id, m.kept) for m in acme.outgoing] == [("old@x", False)]
        assert [(m.message_id, m.kept) for m in acme.incoming] == [("new@x", True)]


@pytest.fixture
async def client(store: StateStore, tmp_path: Path) -> AsyncIterator[TestClient[object, object]]:
    secret = access.load_or_create_secret(tmp_path)
    context = PageContext(_config, store, tmp_path, secret, PORT, None, lambda: NOW)
    test = TestClient(TestServer(make_app(context)))
    await test.start_server()
    await test.get(f"/?key={secret}", headers={"Host": HOST}, allow_redirects=False)
    try:
        yield test
    finally:
        await test.close()


async def _accounts_page(client: TestClient[object, object]) -> str:
    answer = await client.get("/accounts", headers={"Host": HOST})
    assert answer.status == 200
    return await answer.text()


def _row(text: str, css: str, mid: str) -> str:
    match = re.search(
        rf'<tr class="{css}" data-message-id="{re.escape(mid)}">(.*?)</tr>', text, re.S
    )
    assert match is not None, (css, mid, text)
    return " ".join(re.sub(r"<[^>]+>", " ", match.group(1)).split())


async def test_the_page_shows_who_what_and_how_long(client: TestClient[object, object]) -> None:
    text = await _accounts_page(client)
    out = _row(text, "out", "a1@x")
    assert "alice" in out  # who answered
    assert "wile@acme.example and 1 more" in out
    assert "Re: Rockets late" in out
    first = _row(text, "in", "q1@x")
    assert "Wile E. Coyote &lt;wile@acme.example&gt;" in first  # escaped, as every value
    assert "Rockets &lt;b&gt;late&lt;/b&gt;" in first
    assert "<b>late</b>" not in text
    assert "by alice" in first
    assert "not yet: waiting for 2 h 05 min" in _row(text, "in waiting", "q2@x")
    assert "2 waiting for an answer" in text
    assert "the oldest has waited 2 h 05 min" in text
    waiting = _row(text, "waiting-row", "q2@x")
    assert "Road Runner &lt;rr@acme.example&gt;" in waiting
    assert "Invoice 42" in waiting
    assert "2 h 05 min" in waiting
    assert "(no subject)" in _row(text, "waiting-row", "q3@x")
    assert "(not kept)" not in text  # every row here kept its details


async def test_the_page_says_what_was_not_kept(tmp_path: Path) -> None:
    path = _old_file(tmp_path)
    with StateStore(path) as store:
        secret = access.load_or_create_secret(tmp_path)
        context = PageContext(_config, store, tmp_path, secret, PORT, None, lambda: NOW)
        client = TestClient(TestServer(make_app(context)))
        await client.start_server()
        try:
            await client.get(f"/?key={secret}", headers={"Host": HOST}, allow_redirects=False)
            text = await _accounts_page(client)
            row = _row(text, "out", "old@x")
        finally:
            await client.close()
    assert row.count("(not kept)") == 2, row  # recipient and subject
    assert '"(not kept)": filed before commsproxy kept' in text
    assert LOGIN in row  # who answered is known all the same
