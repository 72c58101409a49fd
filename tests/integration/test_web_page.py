"""The local page of a real ``commsproxy run`` in front of the test Dovecot, over HTTP.

Mail is delivered to Dovecot and triaged by the running process (the bundled model holds a
reply in a thread as normal and a newsletter as bulk); the page is then asked what a browser
would ask, with and without its key, cookie, token and origin.
"""

from __future__ import annotations

import email
import email.policy
import http.client
import imaplib
import re
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from commsproxy.triage.holding import holding_switch
from commsproxy.triage.state_store import StateStore
from commsproxy.web.access import SECRET_FILE, SECURITY_HEADERS, csrf_token
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import quiet_batches, triage_proxy, wait_until, where, write_triage_config

PAGES = ("/today", "/day", "/accounts", "/model")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def thread_reply(mid: str, subject: str) -> bytes:
    """Normal under the bundled model: held in Later."""
    headers = {
        "From": "Anna Smith <anna@example.org>",
        "To": "me@example.com",
        "Subject": subject,
        "Message-ID": mid,
        "In-Reply-To": "<earlier@example.org>",
        "References": "<earlier@example.org>",
        "Date": "Sun, 22 Nov 2026 10:00:00 +0000",
    }
    return render(headers, "Thanks, I read your notes. Let's discuss the plan tomorrow.\r\nAnna")


@dataclass
class Page:
    port: int
    secret: str
    proxy: ProxyProcess
    config: Path
    state_dir: Path
    dovecot: Dovecot
    user: str
    password: str

    def request(
        self,
        method: str,
        path: str,
        *,
        cookie: bool = True,
        headers: dict[str, str] | None = None,
        form: dict[str, str] | None = None,
        host: str | None = None,
    ) -> tuple[int, http.client.HTTPMessage, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            sent = {"Host": host or f"127.0.0.1:{self.port}", **(headers or {})}
            if cookie:
                sent["Cookie"] = self.cookie
            body = None
            if form is not None:
                body = urlencode(form)
                sent["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=body, headers=sent)
            answer = conn.getresponse()
            return answer.status, answer.headers, answer.read().decode("utf-8", "replace")
        finally:
            conn.close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    cookie: str = ""


@pytest.fixture
def page(dovecot: Dovecot, tmp_path: Path) -> Iterator[Page]:
    user, password = dovecot.new_user()
    port = _free_port()
    config = write_triage_config(
        dovecot, user, password, tmp_path, batches=quiet_batches(), tables=f"[web]\nport = {port}\n"
    )
    proxy = triage_proxy(config)
    try:
        assert proxy.wait_for_log(rf"local page on http://127\.0\.0\.1:{port}/", 10), (
            proxy.log_text()
        )
        state_dir = tmp_path / "state"
        secret = (state_dir / SECRET_FILE).read_text().strip()
        yield Page(port, secret, proxy, config, state_dir, dovecot, user, password)
    finally:
        proxy.stop()
    assert "Traceback" not in proxy.log_text(), proxy.log_text()


def _enter(page: Page) -> None:
    status, headers, _ = page.request("GET", f"/?key={page.secret}", cookie=False)
    assert status == 303
    assert headers["Location"] == "/today"
    page.cookie = headers["Set-Cookie"].split(";", 1)[0]


def _held(page: Page, subject: str) -> str:
    """Deliver a message that triage holds; returns its Message-ID (without <>)."""
    mid = f"<{uuid.uuid4().hex}@test.example>"
    page.dovecot.deliver(page.user, thread_reply(mid, subject))
    assert wait_until(lambda: where(page.dovecot, page.user).get(mid) == "Later", 20), (
        page.proxy.log_text()
    )
    return mid[1:-1]


def test_refused_without_key_then_cookie_then_every_page(page: Page) -> None:
    for path in ("/", "/today", "/day", f"/?key={page.secret[:-1]}x"):
        status, headers, text = page.request("GET", path, cookie=False)
        assert status == 403, path
        assert "commsproxy open" in text
        assert headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    _enter(page)
    mid = _held(page, "notes from the <b>meeting</b>")
    for path in PAGES:
        status, headers, text = page.request("GET", path)
        assert status == 200, (path, text)
        for name, value in SECURITY_HEADERS.items():
            assert headers[name] == value, (path, name)
        assert f'<main id="page-{path[1:]}"' in text
    _, _, today = page.request("GET", "/today")
    assert f'data-message-id="{mid}" data-login="{page.user}"' in today
    assert "anna@example.org" in today
    assert "notes from the &lt;b&gt;meeting&lt;/b&gt;" in today
    _, _, day = page.request("GET", "/day")
    assert 'id="interruptions-today">1<' in day


def test_host_check_and_loopback_only(page: Page) -> None:
    _enter(page)
    for host in ("attacker.example", f"attacker.example:{page.port}", "127.0.0.1:1"):
        status, _, _ = page.request("GET", "/today", host=host)
        assert status == 403, host
    assert page.request("GET", "/today", host=f"localhost:{page.port}")[0] == 200
    # Bound to 127.0.0.1 alone: another loopback address of this machine gets no answer.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.2", page.port), timeout=2).close()


def test_csrf_refusals_change_nothing(page: Page) -> None:
    _enter(page)
    mid = _held(page, "keep me held")
    token = csrf_token(page.secret)
    form = {"login": page.user, "message_id": mid, "back": "/today"}
    for data, headers in (
        (form, {"Origin": page.origin}),  # no token
        ({**form, "csrf": token}, {"Origin": "http://attacker.example"}),
        ({**form, "csrf": token}, {}),  # neither Origin nor Referer
    ):
        status, _, text = page.request("POST", "/actions/deliver", form=data, headers=headers)
        assert status == 403, text
    # Without the cookie the right token is not enough either.
    status, _, _ = page.request(
        "POST", "/actions/deliver", cookie=False, form={**form, "csrf": token},
        headers={"Origin": page.origin},
    )  # fmt: skip
    assert status == 403
    assert where(page.dovecot, page.user).get(f"<{mid}>") == "Later"


def test_open_prints_the_address(page: Page) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "commsproxy", "open", "--print", "--config", str(page.config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"http://127.0.0.1:{page.port}/?key={page.secret}"


def _act(page: Page, name: str, form: dict[str, str]) -> str:
    """Press a button: POST the action with the page's token and origin; the flash message."""
    form = {**form, "csrf": csrf_token(page.secret), "back": "/today"}
    status, headers, _ = page.request(
        "POST", f"/actions/{name}", form=form, headers={"Origin": page.origin}
    )
    assert status == 303
    location = headers["Location"]
    assert location.startswith("/today?flash=")
    _, _, text = page.request("GET", location)
    flash = text.split('<div id="flash" role="status">', 1)[1].split("</div>", 1)[0]
    return flash.strip()


def test_each_action_changes_the_server(page: Page) -> None:
    _enter(page)
    # Deliver now: the held message is in INBOX on the server, and no longer shown as held.
    first = _held(page, "deliver me")
    said = _act(page, "deliver", {"login": page.user, "message_id": first})
    assert where(page.dovecot, page.user).get(f"<{first}>") == "INBOX", said
    assert f'data-message-id="{first}"' not in page.request("GET", "/today")[2]

    # Always urgent: the config file gets the VIP, the user's comment stays where it was.
    text = page.config.read_text(encoding="utf-8")
    page.config.write_text(
        text.replace("vip = [", "# people I answer at once\nvip = ["), encoding="utf-8"
    )
    said = _act(page, "always-urgent", {"pattern": "carl@example.net"})
    edited = page.config.read_text(encoding="utf-8")
    assert "# people I answer at once\nvip = [" in edited, edited
    assert '"carl@example.net"' in edited.split("vip = [", 1)[1].split("]", 1)[0], said
    said = _act(page, "never-urgent", {"pattern": "*@news.example.org"})
    assert '"*@news.example.org"' in page.config.read_text(encoding="utf-8"), said

    # Release this batch now: both held replies are back in INBOX.
    held = [_held(page, "release me 1"), _held(page, "release me 2")]
    said = _act(page, "release", {"login": page.user, "batch": "later"})
    assert wait_until(
        lambda: all(where(page.dovecot, page.user).get(f"<{m}>") == "INBOX" for m in held), 20
    ), said

    # Focus off until a time: the switch says until when, new mail stays in INBOX.
    until = (datetime.now().astimezone() + timedelta(hours=2)).strftime("%H:%M")
    said = _act(page, "focus-off", {"until": until})
    switch = holding_switch(page.state_dir)
    assert switch is not None, said
    assert switch.until is not None
    assert switch.until.astimezone().strftime("%H:%M") == until
    assert 'id="holding-paused"' in page.request("GET", "/today")[2]
    mid = f"<{uuid.uuid4().hex}@test.example>"
    page.dovecot.deliver(page.user, thread_reply(mid, "while focus is off"))
    with StateStore.open(page.state_dir) as store:
        assert wait_until(lambda: store.latest_decision_by_message_id(page.user, mid), 20)
    assert where(page.dovecot, page.user).get(mid) == "INBOX"
    # Focus on: holding again.
    _act(page, "focus-on", {})
    assert holding_switch(page.state_dir) is None


def _digest_texts(page: Page) -> list[str]:
    """The plain-text part of every digest in INBOX, read from Dovecot."""
    conn = imaplib.IMAP4("127.0.0.1", page.dovecot.imap_port, timeout=30)
    texts = []
    try:
        conn.login(page.user, page.password)
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("SEARCH", "KEYWORD", "$Digest")
        assert typ == "OK", data
        for uid in (data[0] or b"").decode().split():
            typ, parts = conn.uid("FETCH", uid, "(BODY.PEEK[])")
            raw = next(part for part in parts if isinstance(part, tuple))[1]
            message = email.message_from_bytes(raw, policy=email.policy.default)
            body = message.get_body(preferencelist=("plain",))  # type: ignore[attr-defined]
            texts.append(str(body.get_content()))
    finally:
        conn.logout()
    return texts


def test_digest_link_confirms_always_urgent_without_the_cookie(page: Page) -> None:
    _enter(page)
    _held(page, "a digest with a link")
    _act(page, "release", {"login": page.user, "batch": "later"})
    link = rf"http://127\.0\.0\.1:{page.port}/confirm/always-urgent\?\S+"
    assert wait_until(lambda: any(re.search(link, t) for t in _digest_texts(page)), 20)
    found = next(m for t in _digest_texts(page) if (m := re.search(link, t)))
    url = urlsplit(found[0])
    query = parse_qs(url.query)
    assert query["sender"] == ["anna@example.org"]
    # The link works from the mail program: no cookie. Its GET only asks.
    status, _, text = page.request("GET", f"{url.path}?{url.query}", cookie=False)
    assert status == 200, text
    assert "anna@example.org" not in page.config.read_text(encoding="utf-8")
    token = re.search(r'name="csrf" value="([^"]+)"', text)
    assert token is not None
    form = {"sender": "anna@example.org", "sig": query["sig"][0], "csrf": token[1]}
    status, _, text = page.request(
        "POST", url.path, cookie=False, form=form, headers={"Origin": page.origin}
    )
    assert status == 200, text
    vip = page.config.read_text(encoding="utf-8").split("vip = [", 1)[1].split("]", 1)[0]
    assert '"anna@example.org"' in vip


def test_a_drag_in_the_mail_program_shows_as_it_happens(page: Page) -> None:
    """Moving a held message to INBOX behind the page's back is a correction: the page stops
    showing it as held and lists the correction, with no button pressed."""
    _enter(page)
    mid = _held(page, "drag me back")
    assert f'data-message-id="{mid}"' in page.request("GET", "/today")[2]
    conn = imaplib.IMAP4("127.0.0.1", page.dovecot.imap_port, timeout=30)
    try:
        conn.login(page.user, page.password)
        conn.select("Later")
        typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", mid)
        assert typ == "OK", data
        (uid,) = data[0].decode().split()
        typ, data = conn.uid("MOVE", uid, "INBOX")
        assert typ == "OK", data
    finally:
        conn.logout()

    def shown() -> bool:
        text = page.request("GET", "/today")[2]
        return f'data-message-id="{mid}"' not in text and 'data-kind="rescue"' in text

    assert wait_until(shown, 40), page.proxy.log_text()
    assert "drag me back" in page.request("GET", "/today")[2]  # in the corrections list
