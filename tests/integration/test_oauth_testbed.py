"""Tests of the OAuth2 test bed itself: authorization server, browser stand-in, Dovecot.

No commsproxy code is involved: the few lines of PKCE, token exchange and SASL encoding
are written here, so that when commsproxy's OAuth2 tests fail, these tell whether the bed
underneath is sound.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import imaplib
import json
import secrets
import smtplib
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.testbed.dovecot import Dovecot
from tests.testbed.oauth_browser import Browser, BrowserError
from tests.testbed.oauth_server import (
    DEVICE_GRANT,
    OAuthClient,
    OAuthServer,
    OAuthUser,
)

TIMEOUT = 10.0
SCOPE = "openid email offline_access"

# -- the client side, written out by hand --------------------------------------------------


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _loopback_redirect(client: OAuthClient) -> str:
    """The registered redirect on a port of our choosing, as a native app picks one."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    parts = urllib.parse.urlsplit(client.redirect_uri)
    return parts._replace(netloc=f"127.0.0.1:{port}").geturl()


def _post(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    data = urllib.parse.urlencode(form).encode()
    try:
        with urllib.request.urlopen(url, data=data, timeout=TIMEOUT) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read() or b"{}")


def _authorization_url(
    server: OAuthServer, client: OAuthClient, redirect_uri: str, challenge: str, state: str
) -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{server.authorization_endpoint}?{query}"


def _sign_in_with_pkce(
    server: OAuthServer, client: OAuthClient, user: OAuthUser, browser: Browser
) -> dict[str, Any]:
    verifier, challenge = _pkce_pair()
    redirect_uri = _loopback_redirect(client)
    state = secrets.token_urlsafe(8)
    final = browser.sign_in(
        _authorization_url(server, client, redirect_uri, challenge, state), user
    )
    assert final.startswith(redirect_uri + "?")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))
    assert params["state"] == state
    status, token = _post(
        server.token_endpoint,
        {
            "grant_type": "authorization_code",
            "code": params["code"],
            "redirect_uri": redirect_uri,
            "client_id": client.client_id,
            "code_verifier": verifier,
        },
    )
    assert status == 200, token
    return token


def _refresh(server: OAuthServer, client: OAuthClient, refresh_token: str) -> tuple[int, Any]:
    return _post(
        server.token_endpoint,
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": client.client_id,
        },
    )


def _claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (the tests that care verify separately)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


def _xoauth2(user: str, token: str) -> bytes:
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def _oauthbearer(user: str, token: str) -> bytes:
    return f"n,a={user},\x01auth=Bearer {token}\x01\x01".encode()


def _sasl(initial: bytes) -> Callable[[bytes], bytes]:
    """An imaplib authobject: the initial response, then an empty reply to the error
    challenge that a refused XOAUTH2/OAUTHBEARER gets before NO (RFC 7628 3.2.3)."""
    sent = False

    def answer(challenge: bytes) -> bytes:
        nonlocal sent
        if sent:
            return b""
        sent = True
        return initial

    return answer


def _imap_auth(dovecot: Dovecot, mechanism: str, response: bytes) -> str:
    """AUTHENTICATE with imaplib; return the tagged status ("OK"), or the error text."""
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        try:
            typ, _ = client.authenticate(mechanism, _sasl(response))
        except imaplib.IMAP4.error as exc:
            return str(exc)
        client.logout()
        return str(typ)


def _wait_until_expired(access_token: str) -> None:
    """Wait until Dovecot (whole-second clock, ``exp < now``) sees the token as expired."""
    deadline = _claims(access_token)["exp"] + 1
    while time.time() < deadline:
        time.sleep(min(0.1, deadline - time.time()))


def _assert_logged(dovecot: Dovecot, text: str) -> None:
    """Dovecot logged ``text`` (its log process writes a moment after auth answers)."""
    deadline = time.monotonic() + 5
    while text not in dovecot.log_text():
        assert time.monotonic() < deadline, f"{text!r} not in dovecot.log"
        time.sleep(0.05)


# -- discovery -------------------------------------------------------------------------------


def test_discovery_lists_the_endpoints(oauth_server: OAuthServer) -> None:
    with urllib.request.urlopen(oauth_server.metadata_url, timeout=TIMEOUT) as resp:
        meta = json.loads(resp.read())
    assert meta["issuer"] == oauth_server.issuer
    assert meta["authorization_endpoint"] == oauth_server.authorization_endpoint
    assert meta["token_endpoint"] == oauth_server.token_endpoint
    assert meta["device_authorization_endpoint"] == oauth_server.device_authorization_endpoint
    assert meta["revocation_endpoint"] == oauth_server.revocation_endpoint
    assert meta["code_challenge_methods_supported"] == ["S256"]
    with urllib.request.urlopen(meta["jwks_uri"], timeout=TIMEOUT) as resp:
        (key,) = json.loads(resp.read())["keys"]
    assert (key["kid"], key["alg"], key["kty"]) == (oauth_server.kid, "RS256", "RSA")
    assert "d" not in key  # public part only


# -- authorization code + PKCE ---------------------------------------------------------------


def test_pkce_sign_in_gives_signed_jwt_and_refresh_token(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    token = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == oauth_client.access_token_lifetime
    assert token["refresh_token"]
    assert token["scope"] == SCOPE

    key = RSAKey.import_key(oauth_server.public_key_pem)
    access = jwt.decode(token["access_token"], key, algorithms=["RS256"])
    assert access.header == {"alg": "RS256", "typ": "JWT", "kid": oauth_server.kid}
    claims = access.claims
    assert claims["iss"] == oauth_server.issuer
    assert claims["sub"] == oauth_user.username
    assert claims["client_id"] == oauth_client.client_id
    assert claims["exp"] - claims["iat"] == oauth_client.access_token_lifetime

    id_token = jwt.decode(token["id_token"], key, algorithms=["RS256"]).claims
    assert id_token["aud"] == [oauth_client.client_id]
    assert id_token["email"] == f"{oauth_user.username}@localhost"


def test_browser_delivers_the_redirect_to_a_loopback_listener(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    """deliver=True opens the final redirect, as a browser would hand it to the app."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"You can close this window.")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the query carries the code

    with http.server.HTTPServer(("127.0.0.1", 0), Handler) as listener:
        thread = threading.Thread(target=listener.handle_request, daemon=True)
        thread.start()
        redirect_uri = f"http://127.0.0.1:{listener.server_address[1]}"
        _, challenge = _pkce_pair()
        url = _authorization_url(oauth_server, oauth_client, redirect_uri, challenge, "st8")
        final = oauth_browser.sign_in(url, oauth_user, deliver=True)
        thread.join(TIMEOUT)
    assert final.startswith(redirect_uri)
    (path,) = received
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query))
    assert query["state"] == "st8"
    assert query["code"]


def test_code_needs_the_right_verifier_and_works_once(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    verifier, challenge = _pkce_pair()
    redirect_uri = _loopback_redirect(oauth_client)
    url = _authorization_url(oauth_server, oauth_client, redirect_uri, challenge, "s")
    final = oauth_browser.sign_in(url, oauth_user)
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": oauth_client.client_id,
    }
    status, body = _post(oauth_server.token_endpoint, {**form, "code_verifier": "x" * 43})
    assert (status, body["error"]) == (400, "invalid_grant")
    status, _ = _post(oauth_server.token_endpoint, {**form, "code_verifier": verifier})
    assert status == 200
    status, body = _post(oauth_server.token_endpoint, {**form, "code_verifier": verifier})
    assert (status, body["error"]) == (400, "invalid_grant")


def test_signed_in_browser_skips_the_login_form_and_deny_gives_access_denied(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    logins = len(oauth_server.events("login", user=oauth_user.username))
    _, challenge = _pkce_pair()
    url = _authorization_url(
        oauth_server, oauth_client, _loopback_redirect(oauth_client), challenge, "st"
    )
    final = oauth_browser.sign_in(url, oauth_user, approve=False)
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(final).query))
    assert (params["error"], params["state"]) == ("access_denied", "st")
    assert len(oauth_server.events("login", user=oauth_user.username)) == logins


def test_pkce_is_required_and_redirects_must_be_registered(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    redirect_uri = _loopback_redirect(oauth_client)
    plain = _authorization_url(oauth_server, oauth_client, redirect_uri, "c" * 43, "s")
    no_pkce = plain.replace("&code_challenge=", "&x=").replace("&code_challenge_method=", "&y=")
    final = oauth_browser.sign_in(no_pkce, oauth_user)
    assert "error=invalid_request" in final

    elsewhere = plain.replace(
        urllib.parse.quote(redirect_uri, safe=""),
        urllib.parse.quote("http://127.0.0.1:9/other", safe=""),
    )
    with pytest.raises(BrowserError, match="invalid_request"):
        oauth_browser.sign_in(elsewhere, oauth_user)


def test_wrong_password_is_refused(
    oauth_server: OAuthServer, oauth_client: OAuthClient, oauth_user: OAuthUser
) -> None:
    _, challenge = _pkce_pair()
    url = _authorization_url(
        oauth_server, oauth_client, _loopback_redirect(oauth_client), challenge, "s"
    )
    with pytest.raises(BrowserError, match="refused"):
        Browser().sign_in(url, OAuthUser(oauth_user.username, "wrong"))


# -- device authorization grant ------------------------------------------------------------


def _device_start(server: OAuthServer, client: OAuthClient) -> dict[str, Any]:
    status, device = _post(
        server.device_authorization_endpoint, {"client_id": client.client_id, "scope": SCOPE}
    )
    assert status == 200, device
    return device


def _device_poll(server: OAuthServer, client: OAuthClient, device: dict[str, Any]) -> Any:
    return _post(
        server.token_endpoint,
        {
            "grant_type": DEVICE_GRANT,
            "device_code": device["device_code"],
            "client_id": client.client_id,
        },
    )


def test_device_grant(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    device = _device_start(oauth_server, oauth_client)
    assert device["interval"] == oauth_server.device_interval
    status, body = _device_poll(oauth_server, oauth_client, device)
    polled = time.monotonic()
    assert (status, body["error"]) == (400, "authorization_pending")

    message = oauth_browser.verify_device(
        device["verification_uri"], oauth_user, user_code=device["user_code"]
    )
    assert message == "Allowed."

    time.sleep(max(0.0, polled + device["interval"] - time.monotonic()))  # as a client must
    status, token = _device_poll(oauth_server, oauth_client, device)
    assert status == 200, token
    assert _claims(token["access_token"])["sub"] == oauth_user.username
    assert token["refresh_token"]
    status, _ = _device_poll(oauth_server, oauth_client, device)
    assert status == 400  # a device code is good for one token response


def test_device_grant_complete_uri_and_denial(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    device = _device_start(oauth_server, oauth_client)
    assert device["verification_uri_complete"].startswith(device["verification_uri"] + "?")
    message = oauth_browser.verify_device(
        device["verification_uri_complete"], oauth_user, approve=False
    )
    assert message == "Denied."
    status, body = _device_poll(oauth_server, oauth_client, device)
    assert (status, body["error"]) == (400, "access_denied")


def test_device_polling_too_fast_gets_slow_down(
    oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    device = _device_start(oauth_server, oauth_client)
    assert _device_poll(oauth_server, oauth_client, device)[1]["error"] == "authorization_pending"
    # RFC 8628 3.5: sooner than the interval is slow_down, and the interval grows by 5 s.
    assert _device_poll(oauth_server, oauth_client, device)[1]["error"] == "slow_down"


# -- refresh and revocation ----------------------------------------------------------------


def test_refresh_rotates_and_reuse_ends_the_sign_in(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    first = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    status, second = _refresh(oauth_server, oauth_client, first["refresh_token"])
    assert status == 200, second
    assert second["refresh_token"] != first["refresh_token"]
    assert _claims(second["access_token"])["sub"] == oauth_user.username

    status, body = _refresh(oauth_server, oauth_client, first["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    # The replaced token's reuse looked like theft: the newest one is dead too.
    status, body = _refresh(oauth_server, oauth_client, second["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def test_refresh_without_rotation_keeps_the_token(
    oauth_server: OAuthServer, oauth_user: OAuthUser, oauth_browser: Browser
) -> None:
    client = oauth_server.register_client(rotate_refresh_tokens=False)
    first = _sign_in_with_pkce(oauth_server, client, oauth_user, oauth_browser)
    for _ in range(2):
        status, again = _refresh(oauth_server, client, first["refresh_token"])
        assert status == 200, again
        assert "refresh_token" not in again
    assert len(oauth_server.events("refreshed", client_id=client.client_id)) == 2


def test_revoked_refresh_token_gives_invalid_grant(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    token = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    status, _ = _post(
        oauth_server.revocation_endpoint,
        {
            "token": token["refresh_token"],
            "token_type_hint": "refresh_token",
            "client_id": oauth_client.client_id,
        },
    )
    assert status == 200
    status, body = _refresh(oauth_server, oauth_client, token["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


def test_revoking_a_user_ends_all_their_sign_ins(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    one = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    two = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    assert oauth_server.revoke_user(oauth_user.username) == 2
    for token in (one, two):
        status, body = _refresh(oauth_server, oauth_client, token["refresh_token"])
        assert (status, body["error"]) == (400, "invalid_grant")


def test_confidential_client_and_refresh_token_lifetime(
    oauth_server: OAuthServer, oauth_user: OAuthUser, oauth_browser: Browser
) -> None:
    """A Google-style installed app: a (not so) secret client secret, and a refresh token
    that lapses (here after 1 s) and then gives invalid_grant."""
    client = oauth_server.register_client(client_secret="s3cret", refresh_token_lifetime=1)
    verifier, challenge = _pkce_pair()
    redirect_uri = _loopback_redirect(client)
    url = _authorization_url(oauth_server, client, redirect_uri, challenge, "s")
    code = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(oauth_browser.sign_in(url, oauth_user)).query)
    )["code"]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client.client_id,
        "code_verifier": verifier,
    }
    status, body = _post(oauth_server.token_endpoint, form)
    assert (status, body["error"]) == (401, "invalid_client")
    status, token = _post(oauth_server.token_endpoint, {**form, "client_secret": "s3cret"})
    assert status == 200, token
    issued = time.monotonic()

    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": client.client_id,
        "client_secret": "s3cret",
    }
    time.sleep(max(0.0, issued + 1.05 - time.monotonic()))  # the refresh token's lifetime
    status, body = _post(oauth_server.token_endpoint, refresh)
    assert (status, body["error"]) == (400, "invalid_grant")


# -- Dovecot validating the tokens ----------------------------------------------------------


def test_imap_xoauth2_and_oauthbearer_valid_then_expired(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    client = oauth_server.register_client(access_token_lifetime=2)
    token = _sign_in_with_pkce(oauth_server, client, oauth_user, oauth_browser)
    access, name = token["access_token"], oauth_user.username

    assert _imap_auth(oauth_dovecot, "XOAUTH2", _xoauth2(name, access)) == "OK"
    assert _imap_auth(oauth_dovecot, "OAUTHBEARER", _oauthbearer(name, access)) == "OK"

    _wait_until_expired(access)
    assert "AUTHENTICATIONFAILED" in _imap_auth(oauth_dovecot, "XOAUTH2", _xoauth2(name, access))
    assert "AUTHENTICATIONFAILED" in _imap_auth(
        oauth_dovecot, "OAUTHBEARER", _oauthbearer(name, access)
    )
    # Refused for the reason under test, not for some other fault of the bed.
    _assert_logged(oauth_dovecot, f"oauth2({name},127.0.0.1,")
    _assert_logged(oauth_dovecot, "Local validation failed: Token has expired")
    # A refreshed token gets in again: the cycle commsproxy will go through.
    status, fresh = _refresh(oauth_server, client, token["refresh_token"])
    assert status == 200, fresh
    assert _imap_auth(oauth_dovecot, "XOAUTH2", _xoauth2(name, fresh["access_token"])) == "OK"


def test_imap_refuses_garbage_foreign_and_other_users_tokens(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    name = oauth_user.username
    token = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    claims = _claims(token["access_token"])
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        {"alg": "RS256", "typ": "JWT", "kid": oauth_server.kid},
        claims,
        RSAKey.import_key(
            other_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        ),
    )
    for bad in ("garbage", "a.b.c", forged):
        for mechanism, encode in (("XOAUTH2", _xoauth2), ("OAUTHBEARER", _oauthbearer)):
            assert "AUTHENTICATIONFAILED" in _imap_auth(oauth_dovecot, mechanism, encode(name, bad))
    # A good token is good only for its own user.
    assert "AUTHENTICATIONFAILED" in _imap_auth(
        oauth_dovecot, "XOAUTH2", _xoauth2("alice", token["access_token"])
    )
    for reason in ("Not a JWT token", "Bad signature", f"Username 'alice' did not match '{name}'"):
        _assert_logged(oauth_dovecot, f"Local validation failed: {reason}")


def test_imap_sasl_ir_and_password_logins_still_work(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    token = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    initial = base64.b64encode(_xoauth2(oauth_user.username, token["access_token"])).decode()
    with socket.create_connection((oauth_dovecot.host, oauth_dovecot.imap_port), TIMEOUT) as sock:
        stream = sock.makefile("rwb")
        greeting = stream.readline()
        assert b"SASL-IR" in greeting
        assert b"AUTH=XOAUTH2" in greeting
        assert b"AUTH=OAUTHBEARER" in greeting
        # One line, initial response included (RFC 4959): what commsproxy will send.
        stream.write(f"a1 AUTHENTICATE XOAUTH2 {initial}\r\n".encode())
        stream.flush()
        line = stream.readline()
        while line.startswith(b"*"):
            line = stream.readline()
        assert line.startswith(b"a1 OK"), line
    password = oauth_dovecot.password(oauth_user.username)
    with imaplib.IMAP4(oauth_dovecot.host, oauth_dovecot.imap_port, timeout=TIMEOUT) as client:
        assert client.login(oauth_user.username, password)[0] == "OK"
        client.logout()


def _smtp_auth(
    dovecot: Dovecot, mechanism: str, response: bytes, *, initial_response: bool = False
) -> tuple[int, bytes | str, smtplib.SMTP]:
    """AUTH at the submission port; the response on its own line unless ``initial_response``."""
    smtp = smtplib.SMTP(dovecot.host, dovecot.submission_port, timeout=TIMEOUT)
    smtp.ehlo("client.test")
    text = response.decode()

    def answer(challenge: bytes | None = None) -> str:
        # smtplib asks once with no challenge (initial response) and once per 334.
        nonlocal text
        sent, text = text, ""
        return sent

    reply: bytes | str
    try:
        code, reply = smtp.auth(mechanism, answer, initial_response_ok=initial_response)
    except smtplib.SMTPAuthenticationError as exc:
        code, reply = exc.smtp_code, exc.smtp_error
    return code, reply, smtp


def test_smtp_submission_xoauth2_and_oauthbearer(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    token = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    name, access = oauth_user.username, token["access_token"]
    subject = f"oauth-{secrets.token_hex(4)}"
    code, _, smtp = _smtp_auth(oauth_dovecot, "XOAUTH2", _xoauth2(name, access))
    with smtp:
        assert code == 235
        message = f"From: {name}@localhost\r\nTo: bob@localhost\r\nSubject: {subject}\r\n\r\nhi\r\n"
        smtp.sendmail(f"{name}@localhost", ["bob@localhost"], message)
    assert any(subject.encode() in captured for captured in oauth_dovecot.relay_captured())

    code, _, smtp = _smtp_auth(oauth_dovecot, "OAUTHBEARER", _oauthbearer(name, access))
    with smtp:
        assert code == 235
    code, _, smtp = _smtp_auth(oauth_dovecot, "XOAUTH2", _xoauth2(name, "garbage"))
    with smtp:
        assert code == 535


def test_smtp_initial_response_is_limited_by_dovecots_line_length(
    oauth_server: OAuthServer,
    oauth_dovecot: Dovecot,
    oauth_client: OAuthClient,
    oauth_user: OAuthUser,
    oauth_browser: Browser,
) -> None:
    """Pins a fact of the bed: Dovecot 2.3 submission takes command lines of about 1 KiB,
    and an RS256 JWT in ``AUTH XOAUTH2 <initial response>`` is longer (as are Microsoft's
    access tokens). A client must send such a response on its own line after ``334``,
    which any server accepts; only short tokens fit in the initial response here."""
    token = _sign_in_with_pkce(oauth_server, oauth_client, oauth_user, oauth_browser)
    response = _xoauth2(oauth_user.username, token["access_token"])
    assert len(base64.b64encode(response)) > 1100
    code, reply, smtp = _smtp_auth(oauth_dovecot, "XOAUTH2", response, initial_response=True)
    with smtp:
        assert (code, reply) == (500, b"5.5.2 Line too long")


def test_default_dovecot_offers_no_oauth(dovecot: Dovecot) -> None:
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=TIMEOUT) as client:
        assert "AUTH=XOAUTH2" not in client.capabilities
        assert "AUTH=OAUTHBEARER" not in client.capabilities
        client.logout()


def test_tls_server(oauth_user: OAuthUser) -> None:
    with OAuthServer(tls=True) as server:
        assert server.issuer.startswith("https://127.0.0.1:")
        context = server.ssl_context()
        with urllib.request.urlopen(server.metadata_url, timeout=TIMEOUT, context=context) as r:
            assert json.loads(r.read())["issuer"] == server.issuer
        client = server.register_client()
        user = server.add_user(oauth_user.username, oauth_user.password)
        _, challenge = _pkce_pair()
        url = _authorization_url(server, client, _loopback_redirect(client), challenge, "s")
        assert "code=" in Browser(ssl_context=context).sign_in(url, user)
