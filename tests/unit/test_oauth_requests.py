"""What each flow sends, checked against the providers' documented parameters, and PKCE."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from commsproxy.oauth.pkce import Pkce, new_pkce, new_state, s256_challenge
from commsproxy.oauth.providers import GMAIL, MICROSOFT365, OAuthProvider, preset_provider
from commsproxy.oauth.requests import (
    DEVICE_GRANT_TYPE,
    authorization_url,
    code_request,
    device_code_request,
    device_token_request,
    refresh_request,
)

MS = preset_provider(MICROSOFT365, "11111111-2222-3333-4444-555555555555")
GOOGLE = preset_provider(GMAIL, "123.apps.googleusercontent.com", client_secret="GOCSPX-x")
PKCE = Pkce(
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)
REDIRECT = "http://127.0.0.1:53682"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, strict_parsing=True).items()}


def test_pkce_rfc7636_appendix_b() -> None:
    assert s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_new_pkce_is_random_and_within_rfc_limits() -> None:
    one, two = new_pkce(), new_pkce()
    assert one.verifier != two.verifier
    assert 43 <= len(one.verifier) <= 128
    assert set(one.verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    assert one.challenge == s256_challenge(one.verifier)
    assert one.verifier not in repr(one)
    assert new_state() != new_state()


def test_microsoft_endpoints_default_to_organizations_and_take_a_tenant() -> None:
    base = "https://login.microsoftonline.com/organizations/oauth2/v2.0/"
    assert MS.authorization_endpoint == base + "authorize"
    assert MS.token_endpoint == base + "token"
    assert MS.device_endpoint == base + "devicecode"
    assert MS.revocation_endpoint is None
    contoso = preset_provider(MICROSOFT365, "id", tenant="contoso.onmicrosoft.com")
    assert contoso.token_endpoint == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    )
    assert MS.scope == (
        "https://outlook.office.com/IMAP.AccessAsUser.All "
        "https://outlook.office.com/SMTP.Send offline_access"
    )


def test_google_endpoints_and_scope() -> None:
    assert GOOGLE.authorization_endpoint == "https://accounts.google.com/o/oauth2/v2/auth"
    assert GOOGLE.token_endpoint == "https://oauth2.googleapis.com/token"
    assert GOOGLE.device_endpoint == "https://oauth2.googleapis.com/device/code"
    assert GOOGLE.revocation_endpoint == "https://oauth2.googleapis.com/revoke"
    assert GOOGLE.scope == "https://mail.google.com/"
    assert "GOCSPX" not in repr(GOOGLE)


def test_microsoft_authorization_url() -> None:
    url = authorization_url(MS, redirect_uri=REDIRECT, state="st", pkce=PKCE, login_hint="a@b.c")
    assert url.startswith(MS.authorization_endpoint + "?")
    assert query(url) == {
        "client_id": MS.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "response_mode": "query",
        "scope": MS.scope,
        "state": "st",
        "code_challenge": PKCE.challenge,
        "code_challenge_method": "S256",
        "login_hint": "a@b.c",
    }


def test_google_authorization_url() -> None:
    url = authorization_url(GOOGLE, redirect_uri=REDIRECT, state="st", pkce=PKCE)
    assert query(url) == {
        "client_id": GOOGLE.client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "https://mail.google.com/",
        "state": "st",
        "code_challenge": PKCE.challenge,
        "code_challenge_method": "S256",
    }


def test_authorization_url_keeps_an_endpoint_query() -> None:
    custom = OAuthProvider("custom", "c", "https://idp.example/auth?realm=x", "https://t", ("s",))
    assert (
        query(authorization_url(custom, redirect_uri=REDIRECT, state="s", pkce=PKCE))["realm"]
        == "x"
    )


@pytest.mark.parametrize("provider", [MS, GOOGLE], ids=["microsoft365", "gmail"])
def test_code_exchange_form(provider: OAuthProvider) -> None:
    request = code_request(provider, code="the-code", redirect_uri=REDIRECT, pkce=PKCE)
    assert request.url == provider.token_endpoint
    expected = {
        "grant_type": "authorization_code",
        "client_id": provider.client_id,
        "code": "the-code",
        "redirect_uri": REDIRECT,
        "code_verifier": PKCE.verifier,
    }
    if provider is MS:
        expected["scope"] = MS.scope
    else:
        expected["client_secret"] = "GOCSPX-x"
    assert dict(request.form) == expected
    assert "the-code" not in repr(request)


def test_refresh_forms() -> None:
    assert dict(refresh_request(MS, "rt").form) == {
        "grant_type": "refresh_token",
        "client_id": MS.client_id,
        "refresh_token": "rt",
        "scope": MS.scope,
    }
    assert dict(refresh_request(GOOGLE, "rt").form) == {
        "grant_type": "refresh_token",
        "client_id": GOOGLE.client_id,
        "refresh_token": "rt",
        "client_secret": "GOCSPX-x",
    }


def test_device_requests() -> None:
    request = device_code_request(MS)
    assert request.url == MS.device_endpoint
    assert dict(request.form) == {"client_id": MS.client_id, "scope": MS.scope}
    poll = device_token_request(MS, "dc")
    assert poll.url == MS.token_endpoint
    assert dict(poll.form) == {
        "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
        "client_id": MS.client_id,
        "device_code": "dc",
    }
    assert DEVICE_GRANT_TYPE == "urn:ietf:params:oauth:grant-type:device_code"
    # Google wants the client secret when polling
    assert dict(device_token_request(GOOGLE, "dc").form)["client_secret"] == "GOCSPX-x"
    assert dict(device_code_request(GOOGLE).form) == {
        "client_id": GOOGLE.client_id,
        "scope": "https://mail.google.com/",
    }


def test_form_body_is_urlencoded() -> None:
    body = device_code_request(MS).body().decode()
    assert "scope=https%3A%2F%2Foutlook.office.com%2FIMAP.AccessAsUser.All+" in body
