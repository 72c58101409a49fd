"""Odd requests thrown at the local page over a raw socket: every one gets a clean 4xx with
the security headers (or, for a client that leaves, nothing), and the server logs no
traceback. Bytes on the wire, not a client library, so nothing tidies the request first."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commsproxy.config import Config
from commsproxy.triage.state_store import StateStore
from commsproxy.web import access
from commsproxy.web.app import PageContext
from commsproxy.web.links import sender_sig
from commsproxy.web.server import WebServer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = _free_port()  # the page checks Host and Origin against the port it listens on
HOST = f"127.0.0.1:{PORT}"
ORIGIN = f"http://{HOST}"
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Said:
    message: str


class CountingActions:
    """Any call is a failure of the test: no odd request may reach an action."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> object:
        async def call(*args: object) -> Said:
            self.calls.append(name)
            return Said(name)

        return call


@dataclass
class Page:
    port: int
    secret: str
    actions: CountingActions

    @property
    def cookie(self) -> str:
        return f"{access.cookie_name(PORT)}={access.cookie_value(self.secret)}"

    @property
    def csrf(self) -> str:
        return access.csrf_token(self.secret)


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Page]:
    secret = access.load_or_create_secret(tmp_path)
    store = StateStore.open(tmp_path)
    actions = CountingActions()
    context = PageContext(lambda: Config(), store, tmp_path, secret, PORT, lambda: actions,
                          lambda: NOW)  # fmt: skip
    server = WebServer(context, owns_store=True)  # as `run` starts it
    await server.start()
    try:
        yield Page(PORT, secret, actions)
    finally:
        await server.stop()


async def _raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data``, read the whole answer (the request asks to close), parse its head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def _request(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    content_type: str | None = "application/x-www-form-urlencoded",
    cookie: str | None = None,
    origin: str | None = ORIGIN,
    host: str | None = HOST,
    extra: str = "",
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1"]
    if host is not None:
        lines.append(f"Host: {host}")
    if cookie is not None:
        lines.append(f"Cookie: {cookie}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if content_type is not None and body:
        lines.append(f"Content-Type: {content_type}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    head = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return head.encode("latin-1") + body


def _clean(status: int, headers: dict[str, str], *, want: range = range(400, 500)) -> None:
    assert status in want, status
    for name, value in access.SECURITY_HEADERS.items():
        assert headers.get(name.lower()) == value, name


def _no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    # aiohttp's parser notes a request line it cannot parse at DEBUG, before the page sees it.
    bad = [
        r
        for r in caplog.records
        if r.levelno >= logging.INFO and (r.exc_info or "Error handling request" in r.getMessage())
    ]
    assert bad == [], [r.getMessage() for r in bad]


async def test_odd_posts_get_clean_refusals(page: Page, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    token = page.csrf.encode()
    cases: list[tuple[str, bytes, dict[str, object], range]] = [
        ("not UTF-8", b"csrf=" + token + b"&pattern=%ff%fe\xff\xfe", {}, range(400, 404)),
        ("raw non-UTF-8 bytes", b"\xff\xfe\xfd=\xc3\x28&csrf=" + token, {}, range(400, 404)),
        ("unknown charset", b"csrf=" + token,
         {"content_type": "application/x-www-form-urlencoded; charset=no-such-set"},
         range(400, 404)),
        ("oversized", b"csrf=" + token + b"&x=" + b"a" * 200_000, {}, range(413, 414)),
        ("broken multipart", b"--zz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--zz--\r\n",
         {"content_type": "multipart/form-data; boundary=zz"}, range(400, 404)),
        ("multipart without boundary", b"csrf=" + token,
         {"content_type": "multipart/form-data"}, range(400, 404)),
        ("JSON, not a form", b'{"csrf": "x"}', {"content_type": "application/json"},
         range(403, 404)),
        ("no Content-Type", b"csrf=" + token, {"content_type": None}, range(403, 404)),
        ("no Origin", b"csrf=" + token, {"origin": None}, range(403, 404)),
        ("Origin null", b"csrf=" + token, {"origin": "null"}, range(403, 404)),
        ("odd Origin", b"csrf=" + token, {"origin": "http://[::1"}, range(403, 404)),
        ("empty body", b"", {}, range(403, 404)),
    ]  # fmt: skip
    for name, body, options, want in cases:
        for path in ("/actions/always-urgent", "/confirm/always-urgent"):
            status, headers, text = await _raw(
                page.port,
                _request("POST", path, body, cookie=page.cookie, **options),  # type: ignore[arg-type]
            )
            _clean(status, headers, want=want if path.startswith("/actions") else range(400, 500))
            assert b"Traceback" not in text, name
    assert page.actions.calls == []
    _no_traceback(caplog)


async def test_odd_methods_and_heads(page: Page, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"):
        for cookie in (page.cookie, None):
            for path in ("/today", "/actions/deliver", "/confirm/always-urgent", "/nowhere"):
                status, headers, _ = await _raw(
                    page.port, _request(method, path, b"csrf=x", cookie=cookie)
                )
                _clean(status, headers)
    # Requests aiohttp's parser refuses (400) before the page runs: a method that is no
    # HTTP token, an HTTP/1.1 request without Host, a broken chunked body.
    for request in (
        _request("FOO BAR", "/today", cookie=page.cookie),
        _request("GET", "/today", host=None, cookie=page.cookie),
        _request("POST", "/actions/deliver", cookie=page.cookie,
                 extra="Transfer-Encoding: chunked\r\n").replace(b"Content-Length: 0\r\n", b"")
        + b"zz\r\nnot hex\r\n",
    ):  # fmt: skip
        status, _, _ = await _raw(page.port, request)
        assert status == 400
    status, headers, body = await _raw(page.port, _request("HEAD", "/today", cookie=page.cookie))
    _clean(status, headers, want=range(200, 201))
    assert body == b""
    status, headers, _ = await _raw(page.port, _request("HEAD", "/today"))
    _clean(status, headers, want=range(403, 404))
    # No Host, a foreign Host, a cookie that is noise, a link with bytes that are not UTF-8.
    for request in (
        _request("POST", "/actions/deliver", b"\xff", host="evil.example", cookie=page.cookie),
        _request("GET", "/today", cookie='x="\\\\;;;=; ' + "\u00e9".encode().decode("latin-1")),
        _request("GET", "/confirm/always-urgent?sender=%ff%fe&sig=%c3%28"),
        _request("GET", f"/confirm/always-urgent?sender=a@b&sig={sender_sig(page.secret, 'x@y')}"),
        _request("GET", "/?key=%ff"),
    ):
        status, headers, _ = await _raw(page.port, request)
        _clean(status, headers)
    assert page.actions.calls == []
    _no_traceback(caplog)


async def test_client_leaving_while_the_form_is_read(
    page: Page, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ("/actions/always-urgent", "/confirm/always-urgent"):
        head = _request("POST", path, b"csrf=", cookie=page.cookie).replace(
            b"Content-Length: 5", b"Content-Length: 5000"
        )
        _, writer = await asyncio.open_connection("127.0.0.1", page.port)
        writer.write(head)
        await writer.drain()
        writer.close()
        await writer.wait_closed()
    # The server still answers, and nothing was logged as an error.
    await asyncio.sleep(0.2)  # the server's side of the two closed connections ends
    status, headers, _ = await _raw(page.port, _request("GET", "/today", cookie=page.cookie))
    _clean(status, headers, want=range(200, 201))
    assert page.actions.calls == []
    _no_traceback(caplog)
