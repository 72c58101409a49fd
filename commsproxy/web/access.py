"""Who may use the local page, and the headers every answer carries.

The page listens on 127.0.0.1, but any local process and any web site the user visits can
reach that address, so a port alone protects nothing. Three things do:

- A per-install secret (``web-secret`` in the state directory, owner-only). ``commsproxy
  open`` reads it and opens ``/?key=SECRET``; the server answers a right key with a cookie
  (HttpOnly, SameSite=Strict) and a redirect that takes the key out of the address bar. The
  cookie holds a value derived from the secret, never the secret itself.
- CSRF: every action is a POST whose form carries a token derived from the secret, and whose
  Origin (or, without one, Referer) is the page's own. SameSite=Strict already keeps the
  cookie off other sites' requests; the token and the Origin check do not rely on it.
- The Host header must name 127.0.0.1 or localhost with the page's port, so a DNS name that
  a hostile site rebinds to 127.0.0.1 gets nothing.

Every comparison with a secret-derived value is constant-time (``hmac.compare_digest``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import stat
from pathlib import Path

from ..private_files import write_private_text

__all__ = [
    "SECRET_FILE",
    "SECURITY_HEADERS",
    "cookie_name",
    "cookie_value",
    "csrf_token",
    "host_allowed",
    "load_or_create_secret",
    "origin_allowed",
    "same",
    "sign",
]

SECRET_FILE = "web-secret"  # noqa: S105  (the file's name, not a secret)
_SECRET_BYTES = 32
_MIN_LENGTH = 43  # 32 bytes as url-safe base64 without padding

#: Sent with every answer, the refusals and the static files included.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # Not "no-referrer": under it a browser sends "Origin: null" with the page's own form
    # POSTs (Fetch standard), and the CSRF check needs the real Origin. "same-origin" still
    # gives no other site any address of the page.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def load_or_create_secret(state_dir: Path) -> str:
    """The page's secret for ``state_dir``; a new one when there is none or it is unsafe.

    A file others can read, or one that is not a secret commsproxy wrote, is replaced: the
    old value may be known to someone else, and a new one costs only a new ``open``.
    """
    path = state_dir.expanduser() / SECRET_FILE
    try:
        info = path.stat()
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        text = ""
    except (OSError, UnicodeDecodeError):
        text = ""
    else:
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            text = ""
    if len(text) >= _MIN_LENGTH and _urlsafe(text):
        return text
    fresh = secrets.token_urlsafe(_SECRET_BYTES)
    write_private_text(path, fresh + "\n")
    return fresh


def _urlsafe(text: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in text)


def sign(secret: str, message: str) -> str:
    """HMAC-SHA256 of ``message`` under ``secret``, url-safe base64 without padding."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def same(given: str | None, expected: str) -> bool:
    """Constant-time equality; None (the field was missing) never matches."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def csrf_token(secret: str) -> str:
    """The token every action's form carries."""
    return sign(secret, "csrf")


def cookie_name(port: int) -> str:
    # Browsers keep cookies per host, not per port: each page on its own port has its own name.
    return f"commsproxy-{port}"


def cookie_value(secret: str) -> str:
    return sign(secret, "cookie")


def _origins(port: int) -> tuple[str, str]:
    return f"http://127.0.0.1:{port}", f"http://localhost:{port}"


def host_allowed(host: str | None, port: int) -> bool:
    """The Host header names the page itself (no DNS name that could be rebound to us)."""
    return host is not None and host.lower() in (f"127.0.0.1:{port}", f"localhost:{port}")


def origin_allowed(origin: str | None, referer: str | None, port: int) -> bool:
    """A POST comes from the page itself: its Origin, or without one its Referer, says so."""
    allowed = _origins(port)
    if origin is not None:
        return origin.lower() in allowed
    if referer is None:
        return False
    return any(referer.lower().startswith(o + "/") for o in allowed)
