"""The loopback redirect of RFC 8252 §7.3: a one-shot HTTP listener on 127.0.0.1, any port.

The browser is sent back to ``http://127.0.0.1:PORT/?code=...&state=...``. The listener answers
requests one at a time until one carries this sign-in's ``state``: that one ends the wait, with
its ``code`` (or the provider's ``error``) and a short page saying the window can be closed. A
request with another state (a forged or stale redirect) gets 400 and changes nothing; a request
with no OAuth parameters (a browser's favicon) gets 404. The port is chosen by the OS (port 0),
and both providers match a loopback redirect URI whatever its port.
"""

from __future__ import annotations

import hmac
import html
import http.server
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .errors import SignInFailed

__all__ = ["LoopbackListener", "Redirect"]

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>commsproxy</title></head>
<body style="font-family: sans-serif; margin: 3em"><h1>{title}</h1><p>{text}</p></body></html>
"""


@dataclass(frozen=True)
class Redirect:
    """What the provider sent back: a code, or an error with its description."""

    code: str | None = field(default=None, repr=False)
    error: str | None = None
    error_description: str | None = None


class _Server(http.server.HTTPServer):
    expected_state: str
    result: Redirect | None = None


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = 10.0  # a connection that sends nothing cannot hold up the real redirect for long

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[0] if values else None

        state = one("state")
        if state is None and one("code") is None and one("error") is None:
            self._answer(404, "Nothing here", "This address only receives a sign-in.")
            return
        if state is None or not hmac.compare_digest(
            state.encode(), self.server.expected_state.encode()
        ):
            self._answer(400, "Sign-in not recognised", "This sign-in was not started here.")
            return
        error = one("error")
        if error:
            self.server.result = Redirect(None, error, one("error_description"))
            self._answer(200, "Sign-in did not complete", f"The provider said: {error}.")
        elif one("code"):
            self.server.result = Redirect(one("code"))
            self._answer(
                200, "Signed in", "commsproxy has your sign-in. You can close this window."
            )
        else:
            self._answer(400, "Sign-in not recognised", "The redirect carried no code.")

    def _answer(self, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=html.escape(title), text=html.escape(text)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line holds the authorization code: never printed.
        return


class LoopbackListener:
    """Listens on 127.0.0.1:0 for exactly one redirect carrying ``state``.

    Use as a context manager; ``redirect_uri`` is what the authorization request names.
    """

    def __init__(self, state: str, *, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, 0), _Handler)
        self._server.expected_state = state
        self.port: int = self._server.server_address[1]
        self.redirect_uri = f"http://{host}:{self.port}"

    def wait(
        self, timeout: float = 300.0, *, clock: Callable[[], float] = time.monotonic
    ) -> Redirect:
        """Serve requests until this sign-in's redirect arrives; SignInFailed after ``timeout``."""
        deadline = clock() + timeout
        while self._server.result is None:
            left = deadline - clock()
            if left <= 0:
                raise SignInFailed(
                    f"no sign-in arrived within {timeout:g} s; run `commsproxy login` again, "
                    "or `commsproxy login --device` on a machine without a browser"
                )
            self._server.timeout = min(left, 1.0)
            self._server.handle_request()
        return self._server.result

    def close(self) -> None:
        self._server.server_close()

    def __enter__(self) -> LoopbackListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
