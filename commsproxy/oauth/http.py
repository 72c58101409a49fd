"""The one HTTP shape the flows need: a form POST (or a GET URL) in, status + JSON out.

The flows take a ``Transport`` (a plain function) instead of calling the network themselves, so
unit tests hand them a fake and the integration tests point them at a real server. The default
transport is the standard library's urllib: a token request is one small POST, and a pooled async
client (httpx) would be a dependency for nothing the proxy needs; the async token refresh runs the
call in a thread so the event loop never blocks on it.
"""

from __future__ import annotations

import email.utils
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

from .errors import ProviderError

__all__ = [
    "HttpRequest",
    "HttpResponse",
    "Transport",
    "json_body",
    "retry_after_seconds",
    "urllib_transport",
]

USER_AGENT = "commsproxy"


@dataclass(frozen=True)
class HttpRequest:
    """A POST of ``form`` (application/x-www-form-urlencoded) to ``url``."""

    url: str
    form: Mapping[str, str] = field(default_factory=dict, repr=False)  # holds codes and tokens

    def body(self) -> bytes:
        return urlencode(dict(self.form)).encode("ascii")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


Transport = Callable[[HttpRequest], HttpResponse]


def urllib_transport(request: HttpRequest, *, timeout: float = 30.0) -> HttpResponse:
    """POST with urllib; an HTTP error status is returned, not raised: its JSON says why."""
    if urlsplit(request.url).scheme not in ("https", "http"):
        raise ProviderError(f"not an http(s) URL: {request.url}")
    req = urllib.request.Request(  # noqa: S310  (scheme checked above)
        request.url,
        data=request.body(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:  # noqa: S310
            return HttpResponse(reply.status, reply.read(), dict(reply.headers.items()))
    except urllib.error.HTTPError as err:
        with err:
            return HttpResponse(err.code, err.read(), dict(err.headers.items()))
    except (urllib.error.URLError, OSError) as err:
        host = urlsplit(request.url).netloc
        reason = getattr(err, "reason", err)
        raise ProviderError(f"cannot reach {host}: {reason}") from None


def json_body(response: HttpResponse) -> dict[str, Any]:
    """The response's JSON object; an empty dict for a body that is not one (an HTML error page)."""
    try:
        data = json.loads(response.body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def retry_after_seconds(
    value: str | None, *, now: Callable[[], float] = time.time, default: float = 60.0
) -> float:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date, RFC 9110 §10.2.3)."""
    if not value:
        return default
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    return max(0.0, when.timestamp() - now())
