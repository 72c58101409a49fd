"""A stand-in for the user's web browser at the test bed's authorization server.

It is a real HTTP client (urllib with a cookie jar) that does what a person does: open the
authorization URL, follow redirects, fill in and post the login form, press Allow or Deny,
and stop at the redirect that leaves the server for the app's loopback URI. It reads the
server's HTML forms (fields, action, buttons) rather than knowing its URLs, so the flow is
the one a real browser would go through.
"""

from __future__ import annotations

import http.cookiejar
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from html.parser import HTMLParser

from tests.testbed.oauth_server import OAuthUser

_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_STEPS = 20


class BrowserError(AssertionError):
    """The sign-in did not go as a person would expect (error page, unknown page...)."""


@dataclass
class _Form:
    id: str
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []
        self.error: str | None = None
        self.done: str | None = None
        self._capture: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(
                _Form(attr.get("id", ""), attr.get("action", ""), attr.get("method", "get"))
            )
        elif tag == "input" and self.forms and "name" in attr:
            self.forms[-1].fields[attr["name"]] = attr.get("value", "")
        elif tag == "button" and self.forms and "name" in attr:
            self.forms[-1].buttons.append((attr["name"], attr.get("value", "")))
        elif attr.get("id") in ("error", "done"):
            self._capture = attr["id"]

    def handle_data(self, data: str) -> None:
        if self._capture == "error":
            self.error = (self.error or "") + data
        elif self._capture == "done":
            self.done = (self.done or "") + data

    def handle_endtag(self, tag: str) -> None:
        self._capture = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand redirects back to us: the last one must be seen, not followed."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class _Response:
    url: str
    status: int
    location: str | None
    body: str


class Browser:
    """One browser profile (cookie jar): a signed-in user stays signed in across calls."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, timeout: float = 10) -> None:
        self.cookies = http.cookiejar.CookieJar()
        handlers: list[urllib.request.BaseHandler] = [
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirect(),
        ]
        if ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=ssl_context))
        self._opener = urllib.request.build_opener(*handlers)
        self.timeout = timeout
        self.pages: list[str] = []  # URLs visited, without query strings, for diagnostics

    def sign_in(
        self,
        authorization_url: str,
        user: OAuthUser,
        *,
        approve: bool = True,
        deliver: bool = False,
    ) -> str:
        """Go through login and consent; return the URL the server finally redirects to.

        That is the app's loopback redirect with ``code`` and ``state`` (or ``error`` when
        the user denies). With ``deliver=True`` the browser also opens it, so an app's
        loopback listener receives the code as it would from a real browser.
        """
        origin = _origin(authorization_url)
        response = self._open(authorization_url)
        for _ in range(_MAX_STEPS):
            if response.location is not None:
                if _origin(response.location) != origin:
                    if deliver:
                        self._deliver(response.location)
                    return response.location
                response = self._open(response.location)
                continue
            page = _parse(response)
            form = _find_form(page, response)
            if form.id == "login":
                response = self._submit(response.url, form, self._credentials(page, user))
            elif form.id == "consent":
                response = self._submit(response.url, form, {"consent": _choice(approve)})
            else:
                raise BrowserError(f"unexpected form {form.id!r} at {_path(response.url)}")
        raise BrowserError(f"no redirect back to the app after {_MAX_STEPS} pages: {self.pages}")

    def verify_device(
        self,
        verification_uri: str,
        user: OAuthUser,
        *,
        user_code: str | None = None,
        approve: bool = True,
    ) -> str:
        """Complete the device verification page, as the user would on their phone.

        ``verification_uri`` may be ``verification_uri_complete`` (code already filled in)
        or the plain ``verification_uri`` plus ``user_code``. Returns the final page's
        message ("Allowed." / "Denied.").
        """
        response = self._open(verification_uri)
        for _ in range(_MAX_STEPS):
            if response.location is not None:
                response = self._open(response.location)
                continue
            page = _parse(response)
            if page.done is not None:
                return page.done
            form = _find_form(page, response)
            if form.id == "login":
                response = self._submit(response.url, form, self._credentials(page, user))
            elif form.id == "device":
                values = {"consent": _choice(approve)}
                if user_code is not None:
                    values["user_code"] = user_code
                response = self._submit(response.url, form, values)
            else:
                raise BrowserError(f"unexpected form {form.id!r} at {_path(response.url)}")
        raise BrowserError(f"device verification did not finish: {self.pages}")

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _credentials(page: _PageParser, user: OAuthUser) -> dict[str, str]:
        if page.error is not None:
            raise BrowserError(f"sign-in as {user.username} refused: {page.error.strip()}")
        return {"username": user.username, "password": user.password}

    def _submit(self, page_url: str, form: _Form, values: dict[str, str]) -> _Response:
        data = dict(form.fields)
        data.update(values)
        target = urllib.parse.urljoin(page_url, form.action or page_url)
        if form.method.lower() == "post":
            return self._open(target, urllib.parse.urlencode(data).encode())
        return self._open(f"{target}?{urllib.parse.urlencode(data)}")

    def _open(self, url: str, data: bytes | None = None) -> _Response:
        self.pages.append(_path(url))
        request = urllib.request.Request(url, data=data)
        try:
            with self._opener.open(request, timeout=self.timeout) as resp:
                return _Response(url, resp.status, None, resp.read().decode())
        except urllib.error.HTTPError as exc:
            with exc:
                body = exc.read().decode(errors="replace")
                location = exc.headers.get("Location")
            if exc.code in _REDIRECTS and location:
                return _Response(url, exc.code, urllib.parse.urljoin(url, location), body)
            return _Response(url, exc.code, None, body)

    def _deliver(self, url: str) -> None:
        # The app's own listener: a fresh request without the provider's cookies.
        with urllib.request.urlopen(url, timeout=self.timeout) as resp:
            resp.read()


def _parse(response: _Response) -> _PageParser:
    parser = _PageParser()
    parser.feed(response.body)
    parser.close()
    return parser


def _find_form(page: _PageParser, response: _Response) -> _Form:
    # A login form with an error on it is handled by _credentials; other errors end here.
    if page.error is not None and not any(form.id == "login" for form in page.forms):
        raise BrowserError(f"{_path(response.url)} said: {page.error.strip()}")
    if not page.forms:
        raise BrowserError(f"{_path(response.url)} ({response.status}) has no form")
    return page.forms[0]


def _choice(approve: bool) -> str:
    return "approve" if approve else "deny"


def _origin(url: str) -> tuple[str, str]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.netloc


def _path(url: str) -> str:
    return urllib.parse.urlsplit(url).path
