"""The local page's door: the key, the cookie, CSRF, the Host check and the headers.

Driven through aiohttp's test client against the real app and a real state store in a
temporary directory; the user's actions are a small fake that records its calls.
"""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from commsproxy.config import Config
from commsproxy.triage.state_store import StateStore
from commsproxy.triage.user_actions import ActionError
from commsproxy.web import access
from commsproxy.web.app import PageContext, make_app
from commsproxy.web.links import confirm_csrf, correction_link, sender_sig

PORT = 1180
HOST = f"127.0.0.1:{PORT}"
ORIGIN = f"http://{HOST}"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Said:
    message: str


class FakeActions:
    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    async def deliver(self, login: str | None, message_id: str) -> Said:
        if message_id == "gone@x":
            raise ActionError("no held message gone@x")
        self.calls.append(("deliver", login, message_id))
        return Said(f"delivered {message_id}")

    async def release(self, login: str | None, batch: str | None) -> Said:
        self.calls.append(("release", login, batch))
        return Said(f"released {batch}")

    async def always_urgent(self, pattern: str) -> Said:
        self.calls.append(("always_urgent", pattern))
        return Said(
            f"{pattern} is always urgent now; /home/me/.config/commsproxy/config.toml saved"
        )

    async def never_urgent(self, pattern: str) -> Said:
        self.calls.append(("never_urgent", pattern))
        return Said(f"{pattern} is never urgent now")

    async def forget_sender(self, pattern: str) -> Said:
        self.calls.append(("forget_sender", pattern))
        return Said(f"{pattern} has no rule now: the model decides")

    async def focus_off(self, until: datetime) -> Said:
        self.calls.append(("focus_off", until))
        return Said("holding paused")

    async def focus_on(self) -> Said:
        self.calls.append(("focus_on",))
        return Said("holding again")


@pytest.fixture
def actions() -> FakeActions:
    return FakeActions()


@pytest.fixture
async def client(tmp_path: Path, actions: FakeActions) -> AsyncIterator[TestClient[object, object]]:
    secret = access.load_or_create_secret(tmp_path)
    store = StateStore.open(tmp_path)
    context = PageContext(
        lambda: Config(), store, tmp_path, secret, PORT, lambda: actions, lambda: NOW
    )
    test = TestClient(TestServer(make_app(context)))
    await test.start_server()
    test.secret = secret  # type: ignore[attr-defined]
    try:
        yield test
    finally:
        await test.close()
        store.close()


async def _enter(client: TestClient[object, object]) -> None:
    answer = await client.get(
        f"/?key={client.secret}",  # type: ignore[attr-defined]
        headers={"Host": HOST},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert answer.headers["Location"] == "/today"
    cookie = answer.headers["Set-Cookie"]
    for part in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert part in cookie
    assert client.secret not in cookie  # type: ignore[attr-defined]


def test_secret_is_private_and_kept(tmp_path: Path) -> None:
    first = access.load_or_create_secret(tmp_path)
    assert len(first) >= 43
    mode = stat.S_IMODE((tmp_path / access.SECRET_FILE).stat().st_mode)
    assert mode == 0o600
    assert access.load_or_create_secret(tmp_path) == first


def test_secret_readable_by_others_is_replaced(tmp_path: Path) -> None:
    first = access.load_or_create_secret(tmp_path)
    os.chmod(tmp_path / access.SECRET_FILE, 0o644)
    second = access.load_or_create_secret(tmp_path)
    assert second != first
    assert stat.S_IMODE((tmp_path / access.SECRET_FILE).stat().st_mode) == 0o600


async def test_without_key_or_cookie_refused(client: TestClient[object, object]) -> None:
    for path in ("/", "/today", "/?key=wrong"):
        answer = await client.get(path, headers={"Host": HOST}, allow_redirects=False)
        assert answer.status == 403, path
        assert "commsproxy open" in await answer.text()
        assert (
            answer.headers["Content-Security-Policy"]
            == access.SECURITY_HEADERS["Content-Security-Policy"]
        )


async def test_key_gives_cookie_then_pages(client: TestClient[object, object]) -> None:
    await _enter(client)
    answer = await client.get("/today", headers={"Host": HOST})
    assert answer.status == 200
    text = await answer.text()
    assert '<main id="page-today"' in text
    for name, value in access.SECURITY_HEADERS.items():
        assert answer.headers[name] == value


async def test_wrong_host_refused_even_with_cookie(client: TestClient[object, object]) -> None:
    await _enter(client)
    for host in ("evil.example:1180", "127.0.0.1:9999", "localhost"):
        answer = await client.get("/today", headers={"Host": host})
        assert answer.status == 403, host
    assert (await client.get("/today", headers={"Host": f"localhost:{PORT}"})).status == 200


async def test_static_files_carry_the_headers(client: TestClient[object, object]) -> None:
    answer = await client.get("/static/page.css", headers={"Host": HOST})
    assert answer.status == 200
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]


async def test_action_needs_token_and_origin(
    client: TestClient[object, object], actions: FakeActions
) -> None:
    await _enter(client)
    token = access.csrf_token(client.secret)  # type: ignore[attr-defined]
    form = {"pattern": "a@example.com", "back": "/today"}
    cases = [
        ({**form}, {"Origin": ORIGIN}),  # no token
        ({**form, "csrf": ("y" if token[0] == "x" else "x") + token[1:]}, {"Origin": ORIGIN}),
        ({**form, "csrf": token}, {"Origin": "http://evil.example"}),  # other site
        ({**form, "csrf": token}, {"Origin": "null"}),
        ({**form, "csrf": token}, {}),  # neither Origin nor Referer
        ({**form, "csrf": token}, {"Referer": "http://evil.example/"}),
    ]
    for data, headers in cases:
        answer = await client.post(
            "/actions/always-urgent",
            data=data,
            headers={"Host": HOST, **headers},
            allow_redirects=False,
        )
        assert answer.status == 403, (data, headers)
    assert actions.calls == []
    answer = await client.post(
        "/actions/always-urgent",
        data={**form, "csrf": token},
        headers={"Host": HOST, "Referer": ORIGIN + "/today"},
        allow_redirects=False,
    )
    assert answer.status == 303
    assert actions.calls == [("always_urgent", "a@example.com")]
    page = await client.get(answer.headers["Location"], headers={"Host": HOST})
    assert "a@example.com is always urgent now" in await page.text()


async def test_each_action_calls_its_function(
    client: TestClient[object, object], actions: FakeActions
) -> None:
    await _enter(client)
    token = access.csrf_token(client.secret)  # type: ignore[attr-defined]
    posts = [
        ("deliver", {"login": "me", "message_id": "m1@x"}),
        ("release", {"login": "me", "batch": "later"}),
        ("never-urgent", {"pattern": "*@news.example"}),
        ("forget-sender", {"pattern": "*@boss.example"}),
        ("focus-off", {"until": "2026-12-07T15:30:00+00:00"}),
        ("focus-on", {}),
    ]
    for name, data in posts:
        answer = await client.post(
            f"/actions/{name}",
            data={**data, "csrf": token, "back": "/evil"},
            headers={"Host": HOST, "Origin": ORIGIN},
            allow_redirects=False,
        )
        assert answer.status == 303, name
        assert answer.headers["Location"].startswith("/today?flash=")  # never elsewhere
    assert actions.calls == [
        ("deliver", "me", "m1@x"),
        ("release", "me", "later"),
        ("never_urgent", "*@news.example"),
        ("forget_sender", "*@boss.example"),
        ("focus_off", datetime(2026, 12, 7, 15, 30, tzinfo=UTC)),
        ("focus_on",),
    ]


async def test_get_never_acts(client: TestClient[object, object], actions: FakeActions) -> None:
    await _enter(client)
    answer = await client.get("/actions/focus-on", headers={"Host": HOST})
    assert answer.status in (404, 405)
    assert actions.calls == []


async def test_digest_link_confirms_one_sender(
    client: TestClient[object, object], actions: FakeActions
) -> None:
    secret: str = client.secret  # type: ignore[attr-defined]
    link = correction_link(secret, PORT, "ann@example.com")
    assert link.startswith(
        f"http://127.0.0.1:{PORT}/confirm/always-urgent?sender=ann%40example.com"
    )
    page = await client.get(link.split(str(PORT), 1)[1], headers={"Host": HOST})
    assert page.status == 200
    assert "ann@example.com" in await page.text()
    assert actions.calls == []  # the GET changes nothing
    sig = sender_sig(secret, "ann@example.com")
    form = {"sender": "ann@example.com", "sig": sig, "csrf": confirm_csrf(secret, sig)}
    # The signature is for ann only; bob with ann's signature is refused.
    refused = await client.post(
        "/confirm/always-urgent",
        data={**form, "sender": "bob@example.com"},
        headers={"Host": HOST, "Origin": ORIGIN},
    )
    assert refused.status == 403
    cross = await client.post(
        "/confirm/always-urgent", data=form, headers={"Host": HOST, "Origin": "http://evil.example"}
    )
    assert cross.status == 403
    assert actions.calls == []
    done = await client.post(
        "/confirm/always-urgent", data=form, headers={"Host": HOST, "Origin": ORIGIN}
    )
    assert done.status == 200
    assert actions.calls == [("always_urgent", "ann@example.com")]
    # Read without the cookie: a short confirmation, no config path, no links that 403.
    text = await done.text()
    assert "ann@example.com is always urgent now" in text
    assert "config.toml" not in text
    assert "<nav>" not in text
    assert 'href="/today"' not in text
    assert "<code>commsproxy open</code>" in text
    # With the cookie, the page's links are there again.
    await _enter(client)
    text = await (
        await client.post(
            "/confirm/always-urgent", data=form, headers={"Host": HOST, "Origin": ORIGIN}
        )
    ).text()
    assert 'href="/today"' in text
    assert "config.toml" not in text
    assert "commsproxy open" not in text


async def test_refused_action_says_why(client: TestClient[object, object]) -> None:
    await _enter(client)
    token = access.csrf_token(client.secret)  # type: ignore[attr-defined]
    for data, words in (
        ({"login": "me", "message_id": "gone@x"}, "no held message gone@x"),
        ({"login": "me", "message_id": ""}, "deliver: which message?"),
    ):
        answer = await client.post(
            "/actions/deliver",
            data={**data, "csrf": token},
            headers={"Host": HOST, "Origin": ORIGIN},
        )
        assert answer.status == 200  # the redirect followed
        assert words in await answer.text()
    answer = await client.post(
        "/actions/focus-off",
        data={"until": "25:99", "csrf": token},
        headers={"Host": HOST, "Origin": ORIGIN},
    )
    assert "focus off: " in await answer.text()


async def test_refusal_says_how_to_come_in_once(client: TestClient[object, object]) -> None:
    for path in ("/today", "/?key=wrong"):
        text = await (await client.get(path, headers={"Host": HOST})).text()
        assert "`" not in text  # markup, not Markdown
        assert text.count("commsproxy open") == 1, text
        assert "<code>commsproxy open</code>" in text
    await _enter(client)
    # A refused form is not about the key: no word of `commsproxy open` there.
    answer = await client.post("/actions/focus-on", data={"csrf": "x"},
                               headers={"Host": HOST, "Origin": ORIGIN})  # fmt: skip
    assert answer.status == 403
    text = await answer.text()
    assert "security token" in text
    assert "commsproxy open" not in text
