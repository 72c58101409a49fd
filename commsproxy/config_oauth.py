"""The OAuth2 keys of a ``[[login]]``: ``auth = "oauth2"``, ``provider`` and the app registration.

Kept beside config.py so its login parsing only gains a call: ``parse_login_oauth`` reads these
keys through the same reader (so errors name file, line and key, and an unknown key is still
refused) and returns the resolved provider, or None for a password login.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from .endpoints import is_loopback
from .oauth.providers import PRESETS, OAuthProvider, preset_provider

__all__ = ["OAUTH_KEYS", "KeyReader", "parse_login_oauth", "preset_upstreams"]


class KeyReader(Protocol):
    """What this module needs of config.py's table reader (kept as a protocol so the two
    modules do not import each other)."""

    table: Mapping[str, Any]

    def fail(self, key: str, message: str) -> Exception: ...

    def get(self, key: str, kind: type | tuple[type, ...], what: str) -> Any: ...


#: Keys that mean something only with ``auth = "oauth2"``.
OAUTH_KEYS = (
    "provider",
    "client_id",
    "client_secret",
    "tenant",
    "scopes",
    "authorization_endpoint",
    "token_endpoint",
    "device_endpoint",
    "revocation_endpoint",
)
_PROVIDERS = '"microsoft365", "gmail" or "custom"'
_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "device_endpoint", "revocation_endpoint")


def preset_upstreams(provider: OAuthProvider) -> tuple[str | None, str | None]:
    """The IMAP and SMTP servers a preset names (None for ``custom``)."""
    preset = PRESETS.get(provider.name)
    return (preset.upstream_imap, preset.upstream_smtp) if preset else (None, None)


def parse_login_oauth(r: KeyReader) -> OAuthProvider | None:
    auth = r.get("auth", str, '"password" or "oauth2"')
    values = {key: r.get(key, str, "a string") for key in OAUTH_KEYS if key != "scopes"}
    scopes = r.get("scopes", list, 'a list of scopes such as ["openid", "offline_access"]')
    if auth is None or auth == "password":
        for key in OAUTH_KEYS:
            if r.table.get(key) is not None:
                raise r.fail(key, 'only for an OAuth2 login: add auth = "oauth2"')
        return None
    if auth != "oauth2":
        raise r.fail("auth", f'{auth!r}: expected "password" or "oauth2"')
    name = values["provider"]
    if name is None:
        raise r.fail("provider", f'missing: auth = "oauth2" needs provider = {_PROVIDERS}')
    if name != "custom" and name not in PRESETS:
        raise r.fail("provider", f"{name!r}: expected {_PROVIDERS}")
    if scopes is not None and not (scopes and all(isinstance(s, str) and s for s in scopes)):
        raise r.fail("scopes", f"expected a non-empty list of scope strings, got {scopes!r}")
    client_id = (values["client_id"] or "").strip()
    secret = values["client_secret"]
    if name == "custom":
        return _custom(r, values, client_id, secret, scopes)
    preset = PRESETS[name]
    if not client_id:
        raise r.fail("client_id", f"missing: provider {name!r} needs {preset.where_client_id}")
    if preset.needs_secret and not secret:
        raise r.fail(
            "client_secret",
            f"missing: provider {name!r} needs the Client secret shown beside the Client ID "
            "(Google Cloud console → APIs & Services → Credentials; for a Desktop app it is "
            "not confidential)",
        )
    for key in (*_ENDPOINTS, *(() if preset.default_tenant else ("tenant",))):
        if values[key] is not None:
            raise r.fail(key, f'only for provider = "custom" (provider {name!r} sets it)')
    return preset_provider(
        preset,
        client_id,
        client_secret=secret,
        tenant=(values["tenant"] or "").strip() or None,
        scopes=tuple(scopes) if scopes else None,
    )


def _custom(
    r: KeyReader,
    values: dict[str, str | None],
    client_id: str,
    secret: str | None,
    scopes: list[str] | None,
) -> OAuthProvider:
    if not client_id:
        raise r.fail("client_id", "missing: the client ID your authorization server registered")
    if values["tenant"] is not None:
        raise r.fail("tenant", 'only for provider = "microsoft365"')
    for key in _ENDPOINTS:
        url = values[key]
        if url is None:
            if key in ("authorization_endpoint", "token_endpoint"):
                raise r.fail(key, 'missing: provider = "custom" needs it (an https:// URL)')
            continue
        parts = urlsplit(url)
        loopback = parts.scheme == "http" and is_loopback(parts.hostname or "")
        if not parts.hostname or (parts.scheme != "https" and not loopback):
            raise r.fail(key, f"{url!r}: expected an https:// URL (http:// only on this machine)")
    if not scopes:
        raise r.fail("scopes", 'missing: provider = "custom" needs scopes = ["..."]')
    return OAuthProvider(
        name="custom",
        client_id=client_id,
        client_secret=secret,
        authorization_endpoint=values["authorization_endpoint"] or "",
        token_endpoint=values["token_endpoint"] or "",
        device_endpoint=values["device_endpoint"],
        revocation_endpoint=values["revocation_endpoint"],
        scopes=tuple(scopes),
    )
