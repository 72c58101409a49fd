"""What each page of the local page shows, from a real state store with decisions, releases,
corrections and filings in it: held now is only what nothing brought back, the day's counts
and interruptions follow their stated definition, and every value is escaped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from commsproxy.config import Config, parse_config_text
from commsproxy.triage.state_store import Correction, Decision, Filed, StateStore
from commsproxy.web import access
from commsproxy.web.app import PageContext, make_app
from commsproxy.web.facts_day import day_facts, interruptions
from commsproxy.web.facts_today import today_facts

PORT = 1180
HOST = f"127.0.0.1:{PORT}"
# Local noon today, so "today" holds whatever the machine's zone is.
NOW = datetime.now().astimezone().replace(hour=12, minute=0, second=0, microsecond=0)
LOGIN = "me@example.com"


def _config(triage: str = "") -> Config:
    return parse_config_text(
        Path("config.toml"),
        f"""
{triage}
[[login]]
username = "{LOGIN}"
upstream_imap = "imaps://imap.example.com"

[accounts.acme]
name = "Acme"
domains = ["acme.example"]
owner = "alice"
""",
    )


def _decision(uid: int, at: datetime, *, held: bool = True, batch: str | None = "later",
              sender: str = "ann@news.example", subject: str = "hello") -> Decision:  # fmt: skip
    return Decision(LOGIN, "INBOX", 1, uid, f"m{uid}@x", "normal" if held else "urgent", 0.1,
                    "normal (0.10, urgent from 0.50)", batch if held else None, held, sender,
                    subject, at)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    store = StateStore.open(tmp_path)
    early = NOW - timedelta(hours=3)
    store.record_decisions(
        [
            _decision(1, early),  # released at 10:00 below
            _decision(2, NOW - timedelta(hours=1), subject="<script>alert(1)</script>"),
            _decision(3, NOW - timedelta(minutes=50), sender="bob@acme.example"),  # rescued
            _decision(4, NOW - timedelta(minutes=40), held=False, sender="boss@example.com"),
            _decision(5, NOW - timedelta(minutes=30), batch="bulk", subject="sale"),
        ]
    )
    release = store.start_release(LOGIN, "later", None, NOW - timedelta(hours=2))
    store.finish_release(release, 1, NOW - timedelta(hours=2) + timedelta(seconds=5))
    store.record_correction(
        Correction(
            LOGIN,
            "m3@x",
            "rescue",
            "urgent",
            "normal",
            "bob@acme.example",
            "contract",
            NOW - timedelta(minutes=20),
        )
    )
    store.record_filings(
        [
            Filed(LOGIN, "m3@x", "acme", "incoming", "copied", "domain", NOW - timedelta(hours=1)),
            Filed(
                "alice",
                "out1@x",
                "acme",
                "outgoing",
                "appended",
                "domain",
                NOW - timedelta(minutes=55),
            ),
            Filed(
                LOGIN, "m6@x", "acme", "incoming", "copied", "domain", NOW - timedelta(minutes=5)
            ),
        ]
    )
    return store


def test_held_now_leaves_out_what_was_released_or_corrected(
    store: StateStore, tmp_path: Path
) -> None:
    today = today_facts(_config(), store, tmp_path, NOW, pid=1)
    (login,) = today.logins
    held = {b.name: [r.message_id for r in b.held] for b in login.batches}
    assert held == {"later": ["m2@x"], "bulk": ["m5@x"]}
    assert login.next_release is not None
    assert [c.message_id for c in today.corrections] == ["m3@x"]


def test_day_counts_and_interruptions(store: StateStore) -> None:
    day = day_facts(store, NOW)
    assert sum(day.held) == 4
    assert sum(day.at_once) == 1
    assert sum(day.released) == 1
    # 4 held today; m3 brought back early (a drag to INBOX) interrupted anyway, one release
    # brought m1: 4 - 1 - 1 = 2 arrivals the user did not have.
    assert (day.today.held, day.today.early, day.today.releases) == (4, 1, 1)
    assert day.today.avoided == 2
    assert day.week.avoided >= day.today.avoided


def test_brought_back_early_counts_once_and_never_below_zero(store: StateStore) -> None:
    again = [
        Correction(LOGIN, "m2@x", kind, "urgent", "normal", "ann@news.example", "hello",
                   NOW - timedelta(minutes=m))
        for kind, m in (("rescue", 10), ("deliver", 9), ("flag", 8))
    ]  # fmt: skip
    for correction in again:
        store.record_correction(correction)
    day = day_facts(store, NOW)
    # m2 brought back twice counts once; a flag brings nothing back.
    assert day.today.early == 2
    assert day.today.avoided == 4 - 2 - 1
    late = NOW - timedelta(minutes=5)
    store.record_correction(
        Correction(LOGIN, "m5@x", "rescue", "urgent", "bulk", "ann@news.example", "sale", late)
    )
    day = day_facts(store, NOW)
    assert (day.today.early, day.today.avoided) == (3, 0)  # 4 - 3 - 1
    assert interruptions(1, [], early=3).avoided == 0  # never below zero


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


async def _page(client: TestClient[object, object], path: str) -> str:
    answer = await client.get(path, headers={"Host": HOST})
    assert answer.status == 200, path
    return await answer.text()


async def test_today_page(client: TestClient[object, object]) -> None:
    text = await _page(client, "/today")
    assert f'<tr class="held" data-message-id="m2@x" data-login="{LOGIN}">' in text
    assert 'data-message-id="m1@x"' not in text  # released
    assert 'data-message-id="m3@x"' not in text  # the user brought it back
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "data-release-at=" in text
    for action in ("deliver", "always-urgent", "never-urgent", "release", "focus-off"):
        assert f'data-action="{action}"' in text
    assert "took it out of a batch" in text  # the correction, in words
    # Mail delivered at once today, with its never-urgent button.
    delivered = text.split('<section class="delivered">', 1)[1].split("</section>", 1)[0]
    assert 'data-message-id="m4@x"' in delivered
    assert '<input type="hidden" name="pattern" value="boss@example.com">' in delivered


async def test_vip_row_offers_to_stop_the_rule_not_never_urgent(
    store: StateStore, tmp_path: Path
) -> None:
    """Delivered at once because the sender is on the vip list: "never urgent" would change
    nothing (vip wins), so the row offers to take the vip pattern away instead."""
    config = _config('[triage]\nvip = ["*@example.com"]\n')
    secret = access.load_or_create_secret(tmp_path)
    context = PageContext(lambda: config, store, tmp_path, secret, PORT, None, lambda: NOW)
    async with TestClient(TestServer(make_app(context))) as test:
        await test.get(f"/?key={secret}", headers={"Host": HOST}, allow_redirects=False)
        text = await _page(test, "/today")
    delivered = text.split('<section class="delivered">', 1)[1].split("</section>", 1)[0]
    assert 'data-action="forget-sender"' in delivered
    assert '<input type="hidden" name="pattern" value="*@example.com">' in delivered
    assert "Stop treating as always urgent" in delivered
    assert 'data-action="never-urgent"' not in delivered


async def test_held_row_groups_always_urgent(client: TestClient[object, object]) -> None:
    text = await _page(client, "/today")
    row = text.split('data-message-id="m2@x"', 1)[1].split("</tr>", 1)[0]
    group = row.split('<div class="button-group"', 1)[1].split("</div>", 1)[0]
    assert "Always urgent:" in group
    assert group.count('data-action="always-urgent"') == 2  # this sender | whole domain
    assert 'data-action="never-urgent"' not in group
    assert 'data-action="never-urgent"' in row


def test_next_release_names_every_batch_due_then(store: StateStore, tmp_path: Path) -> None:
    def batches(bulk_at: str) -> Config:
        return _config(
            '[[batch]]\nname = "later"\nmailbox = "Later"\nlabels = ["normal"]\n'
            'release = ["09:00", "15:00"]\n'
            '[[batch]]\nname = "bulk"\nmailbox = "Bulk"\nlabels = ["bulk"]\n'
            f'release = ["{bulk_at}"]\n'
        )

    for bulk_at, named in (("15:00", ("later", "bulk")), ("16:00", ("later",))):
        (login,) = today_facts(batches(bulk_at), store, tmp_path, NOW, pid=1).logins
        assert login.next_release is not None
        names, at = login.next_release
        assert names == named
        assert at.astimezone().strftime("%H:%M") == "15:00"

    secret = access.load_or_create_secret(tmp_path)
    config = batches("15:00")
    context = PageContext(lambda: config, store, tmp_path, secret, PORT, None, lambda: NOW)

    async def page() -> str:
        async with TestClient(TestServer(make_app(context))) as test:
            await test.get(f"/?key={secret}", headers={"Host": HOST}, allow_redirects=False)
            return await _page(test, "/today")

    text = asyncio.run(page())
    line = text.split('<p class="next">', 1)[1].split("</p>", 1)[0]
    assert 'Next release: <strong class="next-batch">later</strong> and ' in line
    assert '<strong class="next-batch">bulk</strong> at' in line


async def test_day_page(client: TestClient[object, object]) -> None:
    text = await _page(client, "/day")
    assert '<div class="value" id="interruptions-today">2</div>' in text
    assert "1 brought back early" in text
    assert "minus those brought back early" in text
    assert 'id="interruptions-week"' in text
    assert "<svg" in text
    assert "<rect" in text


async def test_accounts_page(client: TestClient[object, object]) -> None:
    text = await _page(client, "/accounts")
    assert "Acme" in text
    assert "looked after by alice" in text
    assert "1 waiting for an answer" in text  # m6 came after alice's answer; m3 before it
    assert "answered by alice" in text


async def test_model_page(client: TestClient[object, object]) -> None:
    text = await _page(client, "/model")
    assert '<main id="page-model"' in text
    assert 'id="model-trained"' in text
    assert "<strong>1</strong> of its" in text  # one correction this week
