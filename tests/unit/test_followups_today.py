"""The Today page lists each login's sent mail waiting for an answer: to whom, sent, reminder."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from commsproxy.triage.state_store import FollowUp, StateStore
from commsproxy.web import access
from commsproxy.web.app import PageContext, make_app
from commsproxy.web.facts_today import today_facts
from tests.unit.test_web_pages import HOST, LOGIN, NOW, PORT, _config


def fill(store: StateStore) -> None:
    def watch(mid: str, subject: str, to: tuple[str, ...], days: int) -> None:
        sent = NOW - timedelta(days=1)
        store.watch_followup(FollowUp(LOGIN, mid, to, subject, sent, NOW + timedelta(days=days),
                                      "waiting"))  # fmt: skip

    watch("late@x", "Contract <draft>", ("bob@acme.example", "cc@acme.example", "x@y.example"), 2)
    watch("soon@x", "Invoice", ("ann@client.example",), 1)
    watch("done@x", "Answered", ("dan@client.example",), 1)
    store.followup_answered(LOGIN, "done@x", "dan@client.example", NOW)


def test_facts_list_the_waiting_ones_soonest_first(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        fill(store)
        (login,) = today_facts(_config(), store, tmp_path, NOW, pid=1).logins
    assert [(w.message_id, w.to) for w in login.waiting] == [
        ("soon@x", "ann@client.example"),
        ("late@x", "bob@acme.example and 2 more"),
    ]
    assert login.waiting[0].due_at == NOW + timedelta(days=1)


async def test_today_page_shows_them_escaped(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    fill(store)
    secret = access.load_or_create_secret(tmp_path)
    context = PageContext(_config, store, tmp_path, secret, PORT, None, lambda: NOW)
    client = TestClient(TestServer(make_app(context)))
    await client.start_server()
    try:
        await client.get(f"/?key={secret}", headers={"Host": HOST}, allow_redirects=False)
        answer = await client.get("/today", headers={"Host": HOST})
        assert answer.status == 200
        text = await answer.text()
    finally:
        await client.close()
        store.close()
    waiting = text.split('<div class="waiting">', 1)[1].split("</div>", 1)[0]
    assert "Waiting for an answer <small>2</small>" in waiting
    assert '<li class="waiting-for-answer" data-message-id="soon@x">' in waiting
    assert "Contract &lt;draft&gt;" in waiting
    assert "<draft>" not in text
    sent = (NOW - timedelta(days=1)).strftime("%a %d %b %H:%M")
    due = (NOW + timedelta(days=1)).strftime("%a %d %b %H:%M")
    assert f"sent to ann@client.example on {sent}, reminder on {due}" in " ".join(waiting.split())
    assert "done@x" not in text
