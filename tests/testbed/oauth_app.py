"""The OAuth2 / OpenID authorization server of the test bed, built on authlib and Flask.

Runs in its own process (``python -m tests.testbed.oauth_app CONFIG.json``), started and
driven by :class:`tests.testbed.oauth_server.OAuthServer`. A separate process keeps
authlib's deprecation warnings away from pytest's ``-W error`` and lets a test-bed crash
show as a dead server rather than a broken test process.

What it serves, like a real identity provider: authorization code with PKCE (S256 only,
required) and loopback redirects on any port (RFC 8252 7.3), the device authorization
grant (RFC 8628), rotating refresh tokens with reuse detection, revocation (RFC 7009),
OpenID id_tokens, discovery and JWKS. Access tokens are RS256 JWTs with ``typ: JWT``,
because Dovecot 2.3 refuses ``at+jwt``. A login form and a consent form stand where a
provider's web pages would.

Test-only controls live under ``/testbed/`` and need the admin bearer secret from the
config: add users, register clients, revoke a user's grants, read what was issued.
"""

from __future__ import annotations

import html
import json
import logging
import secrets
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Response, g, redirect, request, session
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.serving import WSGIRequestHandler, make_server

log = logging.getLogger("oauth_app")

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")
_CODE_LIFETIME = 60


# -- records -----------------------------------------------------------------------------


@dataclass
class Client:
    """A registered client; public (PKCE, no secret) unless ``client_secret`` is set."""

    client_id: str
    client_secret: str | None = None
    redirect_uris: list[str] = field(default_factory=list)
    access_token_lifetime: int = 300
    refresh_token_lifetime: int | None = None
    rotate_refresh_tokens: bool = True
    grant_types: list[str] = field(
        default_factory=lambda: ["authorization_code", "refresh_token", DEVICE_GRANT]
    )

    # authlib's ClientMixin protocol, duck-typed.
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""  # the test bed grants whatever scope is asked for

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return any(_redirect_matches(allowed, redirect_uri) for allowed in self.redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and secrets.compare_digest(
            self.client_secret, client_secret
        )

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.client_secret is None:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def _redirect_matches(registered: str, asked: str) -> bool:
    """Exact match, except that a loopback redirect may use any port (RFC 8252 7.3)."""
    if registered == asked:
        return True
    reg, got = urllib.parse.urlsplit(registered), urllib.parse.urlsplit(asked)
    if reg.scheme != "http" or reg.hostname not in _LOOPBACK_HOSTS:
        return False
    # An empty path and "/" are the same request line to the app's listener.
    return (reg.scheme, reg.hostname, reg.path or "/", reg.query) == (
        got.scheme,
        got.hostname,
        got.path or "/",
        got.query,
    )


@dataclass
class AuthCode:
    code: str
    client_id: str
    user: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: int
    expires_at: float

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


@dataclass
class RefreshToken:
    token: str
    client_id: str
    user: str
    scope: str
    grant_id: str  # one sign-in; rotation keeps it, revocation kills all its tokens
    expires_at: float | None
    revoked: bool = False
    rotated: bool = False  # replaced by a newer token of the same grant

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return 0 if self.expires_at is None else int(self.expires_at - time.time())

    def is_expired(self) -> bool:
        return self.expires_at is not None and time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> str:
        return self.user

    def get_client(self) -> Client:
        return STATE.clients[self.client_id]


@dataclass
class DeviceCredential:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    expires_at: float
    interval: int
    last_poll: float = 0.0
    decision: tuple[str, bool] | None = None  # (user, approved) once the user acted

    def get_client_id(self) -> str:
        return self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_user_code(self) -> str:
        return self.user_code

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at


class State:
    """Everything the server knows; one lock, since werkzeug serves on threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[str, str] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, AuthCode] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.devices: dict[str, DeviceCredential] = {}
        self.events: list[dict[str, Any]] = []
        self.issuer = ""
        self.audience = ""
        self.key: RSAKey | None = None
        self.device_interval = 1
        self.device_lifetime = 600

    def event(self, kind: str, **fields: Any) -> None:
        # Never the tokens themselves: the event log is for asserting counts and order.
        with self.lock:
            self.events.append({"event": kind, "time": time.time(), **fields})

    def revoke_grant(self, grant_id: str) -> int:
        count = 0
        with self.lock:
            for token in self.refresh_tokens.values():
                if token.grant_id == grant_id and not token.revoked:
                    token.revoked = True
                    count += 1
        return count


STATE = State()


# -- tokens ------------------------------------------------------------------------------


def _signing_key() -> RSAKey:
    assert STATE.key is not None
    return STATE.key


def _access_token(client: Client, grant_type: str, user: str, scope: str) -> str:
    now = int(time.time())
    claims = {
        "iss": STATE.issuer,
        "sub": user,
        "aud": STATE.audience,
        "client_id": client.client_id,
        "scope": scope,
        "iat": now,
        "nbf": now,
        "exp": now + client.access_token_lifetime,
        "jti": secrets.token_urlsafe(12),
        "email": f"{user}@localhost",
        "preferred_username": user,
    }
    # typ JWT, not at+jwt: Dovecot 2.3.19 refuses anything else in local validation.
    header = {"alg": "RS256", "typ": "JWT", "kid": _signing_key().kid}
    STATE.event("access_token", client_id=client.client_id, user=user, grant_type=grant_type)
    return jwt.encode(header, claims, _signing_key())


def _new_refresh_token(client: Client, user: str, scope: str, grant_id: str) -> str:
    value = secrets.token_urlsafe(32)
    lifetime = client.refresh_token_lifetime
    with STATE.lock:
        STATE.refresh_tokens[value] = RefreshToken(
            token=value,
            client_id=client.client_id,
            user=user,
            scope=scope,
            grant_id=grant_id,
            expires_at=None if lifetime is None else time.time() + lifetime,
        )
    return value


class TokenGenerator(BearerTokenGenerator):  # type: ignore[misc]
    """Bearer tokens whose access token is a JWT and whose lifetime is per client."""

    def __init__(self) -> None:
        super().__init__(access_token_generator=None)

    def generate(
        self,
        grant_type: str,
        client: Client,
        user: str | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        scope = self.get_allowed_scope(client, scope)
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": _access_token(client, grant_type, user, scope),
            "expires_in": client.access_token_lifetime,
            "scope": scope,
        }
        if include_refresh_token:
            # A refresh keeps the sign-in's grant id so revoking one token ends them all.
            grant_id = g.get("testbed_grant_id") or secrets.token_hex(8)
            token["refresh_token"] = _new_refresh_token(client, user, scope, grant_id)
        return token


# -- grants ------------------------------------------------------------------------------


class PKCE(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 only, required of every client (public or not)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ("S256",)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        payload = grant.request.payload
        if not payload.data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: missing 'code_challenge'")
        if payload.data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthCode) -> str:
        return authorization_code.code_challenge_method


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

    def save_authorization_code(self, code: str, req: Any) -> None:
        with STATE.lock:
            STATE.codes[code] = AuthCode(
                code=code,
                client_id=req.client.client_id,
                user=req.user,
                redirect_uri=req.payload.redirect_uri or "",
                scope=req.scope or "",
                nonce=req.payload.data.get("nonce"),
                code_challenge=req.payload.data.get("code_challenge", ""),
                code_challenge_method=req.payload.data.get("code_challenge_method", "S256"),
                auth_time=int(session.get("auth_time", time.time())),
                expires_at=time.time() + _CODE_LIFETIME,
            )

    def query_authorization_code(self, code: str, client: Client) -> AuthCode | None:
        with STATE.lock:
            item = STATE.codes.get(code)
        if item is None or item.client_id != client.client_id or time.time() > item.expires_at:
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        with STATE.lock:
            STATE.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthCode) -> str:
        return authorization_code.user


class OpenIDCodeExtension(OpenIDCode):  # type: ignore[misc]
    """id_token for ``scope=openid``, signed with the same key as access tokens."""

    def exists_nonce(self, nonce: str, req: Any) -> bool:
        with STATE.lock:
            return any(code.nonce == nonce for code in STATE.codes.values())

    def resolve_client_private_key(self, client: Client) -> RSAKey:
        return _signing_key()

    def get_client_algorithm(self, client: Client) -> str:
        return "RS256"

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        return {"iss": STATE.issuer, "aud": [client.client_id]}

    def get_encode_header(self, client: Client) -> dict[str, Any]:
        return {"alg": "RS256", "kid": _signing_key().kid}

    def generate_user_info(self, user: str, scope: str) -> dict[str, Any]:
        return {"sub": user, "email": f"{user}@localhost", "preferred_username": user}


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshToken | None:
        with STATE.lock:
            item = STATE.refresh_tokens.get(refresh_token)
            if item is None or item.revoked or item.is_expired():
                return None
            if item.rotated:
                # Reuse of a replaced token: a stolen copy or a client that lost the new
                # one. Like real providers (RFC 9700 4.14.2), end the whole sign-in.
                STATE.revoke_grant(item.grant_id)
                STATE.event("refresh_token_reuse", client_id=item.client_id, user=item.user)
                return None
        g.testbed_grant_id = item.grant_id
        return item

    def authenticate_user(self, refresh_token: RefreshToken) -> str:
        return refresh_token.user

    def issue_token(self, user: str, refresh_token: RefreshToken) -> dict[str, Any]:
        client = self.request.client
        scope = self.request.payload.scope or refresh_token.get_scope()
        token: dict[str, Any] = self.generate_token(
            user=user, scope=scope, include_refresh_token=client.rotate_refresh_tokens
        )
        return token

    def revoke_old_credential(self, refresh_token: RefreshToken) -> None:
        if self.request.client.rotate_refresh_tokens:
            with STATE.lock:
                refresh_token.rotated = True
        STATE.event("refreshed", client_id=refresh_token.client_id, user=refresh_token.user)


class DeviceAuthorization(DeviceAuthorizationEndpoint):  # type: ignore[misc]
    def create_endpoint_response(self, req: Any) -> tuple[int, dict[str, Any], Any]:
        self.INTERVAL = STATE.device_interval
        self.EXPIRES_IN = STATE.device_lifetime
        result: tuple[int, dict[str, Any], Any] = super().create_endpoint_response(req)
        return result

    def get_verification_uri(self) -> str:
        return f"{STATE.issuer}/device"

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        with STATE.lock:
            STATE.devices[data["device_code"]] = DeviceCredential(
                device_code=data["device_code"],
                user_code=data["user_code"],
                client_id=client_id,
                scope=scope or "",
                expires_at=time.time() + data["expires_in"],
                interval=data["interval"],
            )


class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

    def query_device_credential(self, device_code: str) -> DeviceCredential | None:
        with STATE.lock:
            return STATE.devices.get(device_code)

    def query_user_grant(self, user_code: str) -> tuple[str, bool] | None:
        with STATE.lock:
            for item in STATE.devices.values():
                if item.user_code == user_code:
                    return item.decision
        return None

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        # RFC 8628 3.5: polling faster than the interval earns slow_down and +5 s.
        now = time.monotonic()
        with STATE.lock:
            too_fast = now - credential.last_poll < credential.interval
            credential.last_poll = now
            if too_fast:
                credential.interval += 5
        return too_fast

    def create_token_response(self) -> tuple[int, dict[str, Any], Any]:
        result: tuple[int, dict[str, Any], Any] = super().create_token_response()
        with STATE.lock:  # a device code is good for one token response
            STATE.devices.pop(self.request.credential.device_code, None)
        return result


class Revocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

    def query_token(self, token_string: str, token_type_hint: str | None) -> RefreshToken | None:
        # Access tokens are self-contained JWTs; revoking one is accepted and does nothing,
        # as with providers whose resource servers validate locally.
        with STATE.lock:
            return STATE.refresh_tokens.get(token_string)

    def revoke_token(self, token: RefreshToken, req: Any) -> None:
        count = STATE.revoke_grant(token.grant_id)
        STATE.event("revoked", client_id=token.client_id, user=token.user, tokens=count)


# -- web pages ---------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> Response:
    text = (
        f"<!doctype html><html><head><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(text, status=status, mimetype="text/html")


def _login_redirect() -> Response:
    target = "/login?" + urllib.parse.urlencode({"next": request.full_path})
    return redirect(target, code=302)  # type: ignore[return-value]


def _current_user() -> str | None:
    user = session.get("user")
    with STATE.lock:
        return user if isinstance(user, str) and user in STATE.users else None


def _error_page(error: OAuth2Error) -> Response:
    # Without a trustworthy redirect_uri the user sees the error, as RFC 6749 4.1.2.1 asks.
    return _page("Sign-in error", f"<p id='error'>{html.escape(error.error)}</p>", status=400)


def create_app(admin_token: str) -> Flask:
    app = Flask(__name__)
    app.secret_key = secrets.token_bytes(32)
    server = AuthorizationServer(app, query_client=_query_client, save_token=lambda *a: None)
    server.register_token_generator("default", TokenGenerator())
    server.register_grant(AuthorizationCodeGrant, [PKCE(required=True), OpenIDCodeExtension()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(DeviceGrant)
    server.register_endpoint(DeviceAuthorization)
    server.register_endpoint(Revocation)

    @app.get("/.well-known/openid-configuration")
    @app.get("/.well-known/oauth-authorization-server")
    def metadata() -> Response:
        return Response(json.dumps(_metadata()), mimetype="application/json")

    @app.get("/jwks")
    def jwks() -> Response:
        public = _signing_key().as_dict(private=False)
        public.update({"use": "sig", "alg": "RS256"})
        return Response(json.dumps({"keys": [public]}), mimetype="application/json")

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Response:
        next_url = request.values.get("next", "/")
        if not next_url.startswith("/"):
            next_url = "/"  # no open redirects, even in a test bed
        error = ""
        if request.method == "POST":
            user = request.form.get("username", "")
            password = request.form.get("password", "")
            with STATE.lock:
                known = STATE.users.get(user)
            if known is not None and secrets.compare_digest(known, password):
                session["user"] = user
                session["auth_time"] = int(time.time())
                STATE.event("login", user=user)
                return redirect(next_url, code=303)  # type: ignore[return-value]
            STATE.event("login_failed", user=user)
            error = "<p id='error'>Wrong user name or password.</p>"
        form = (
            f"{error}<form id='login' method='post' action='/login'>"
            f"<input type='hidden' name='next' value='{html.escape(next_url)}'>"
            "<label>User <input name='username' autocomplete='username'></label>"
            "<label>Password <input type='password' name='password'></label>"
            "<button type='submit'>Sign in</button></form>"
        )
        return _page("Sign in", form, status=401 if error else 200)

    @app.route("/authorize", methods=["GET", "POST"])
    def authorize() -> Response:
        user = _current_user()
        if user is None:
            return _login_redirect()
        if request.method == "GET":
            try:
                grant = server.get_consent_grant(end_user=user)
            except OAuth2Error as error:
                if error.redirect_uri:
                    response: Response = server.handle_error_response(request, error)
                    return response
                return _error_page(error)
            client_id = html.escape(grant.client.client_id)
            scope = html.escape(grant.request.scope or "")
            action = html.escape(request.full_path)
            form = (
                f"<p>{client_id} wants access to your mail as {html.escape(user)} "
                f"(scope: <span id='scope'>{scope}</span>).</p>"
                f"<form id='consent' method='post' action='{action}'>"
                "<button type='submit' name='consent' value='approve'>Allow</button>"
                "<button type='submit' name='consent' value='deny'>Deny</button></form>"
            )
            return _page("Allow access?", form)
        approved = request.form.get("consent") == "approve"
        STATE.event("consent", user=user, approved=approved)
        result: Response = server.create_authorization_response(
            grant_user=user if approved else None
        )
        return result

    @app.post("/token")
    def token() -> Response:
        result: Response = server.create_token_response()
        return result

    @app.post("/revoke")
    def revoke() -> Response:
        result: Response = server.create_endpoint_response("revocation")
        return result

    @app.post("/device_authorization")
    def device_authorization() -> Response:
        result: Response = server.create_endpoint_response("device_authorization")
        return result

    @app.route("/device", methods=["GET", "POST"])
    def device() -> Response:
        user = _current_user()
        if user is None:
            return _login_redirect()
        if request.method == "GET":
            code = html.escape(request.args.get("user_code", ""))
            form = (
                f"<form id='device' method='post' action='/device'>"
                f"<label>Code <input name='user_code' value='{code}'></label>"
                "<button type='submit' name='consent' value='approve'>Allow</button>"
                "<button type='submit' name='consent' value='deny'>Deny</button></form>"
            )
            return _page("Connect a device", form)
        user_code = request.form.get("user_code", "").strip().upper()
        approved = request.form.get("consent") == "approve"
        with STATE.lock:
            match = [d for d in STATE.devices.values() if d.user_code == user_code]
            if not match or match[0].is_expired():
                return _page("Connect a device", "<p id='error'>Unknown code.</p>", status=400)
            match[0].decision = (user, approved)
        STATE.event("device_decision", user=user, approved=approved)
        return _page("Done", f"<p id='done'>{'Allowed' if approved else 'Denied'}.</p>")

    def require_admin() -> None:
        if not secrets.compare_digest(request.headers.get("Authorization", ""), admin_token):
            raise PermissionError

    @app.errorhandler(PermissionError)
    def forbidden(_: PermissionError) -> Response:
        return Response("forbidden", status=403)

    @app.post("/testbed/users")
    def add_user() -> Response:
        require_admin()
        body = request.get_json()
        with STATE.lock:
            STATE.users[body["username"]] = body["password"]
        return Response("{}", mimetype="application/json")

    @app.post("/testbed/clients")
    def add_client() -> Response:
        require_admin()
        client = Client(**request.get_json())
        with STATE.lock:
            STATE.clients[client.client_id] = client
        return Response("{}", mimetype="application/json")

    @app.post("/testbed/revoke-user")
    def revoke_user() -> Response:
        """Like a user removing the app's access in their account settings."""
        require_admin()
        name = request.get_json()["username"]
        with STATE.lock:
            grant_ids = {t.grant_id for t in STATE.refresh_tokens.values() if t.user == name}
        count = sum(STATE.revoke_grant(grant_id) for grant_id in grant_ids)
        STATE.event("revoked", user=name, tokens=count)
        return Response(json.dumps({"revoked": count}), mimetype="application/json")

    @app.get("/testbed/events")
    def events() -> Response:
        require_admin()
        with STATE.lock:
            return Response(json.dumps(STATE.events), mimetype="application/json")

    return app


def _query_client(client_id: str) -> Client | None:
    with STATE.lock:
        return STATE.clients.get(client_id)


def _metadata() -> dict[str, Any]:
    issuer = STATE.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "device_authorization_endpoint": f"{issuer}/device_authorization",
        "revocation_endpoint": f"{issuer}/revoke",
        "jwks_uri": f"{issuer}/jwks",
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
    }


class _QuietHandler(WSGIRequestHandler):
    """Logs method and path only: query strings carry codes and user codes."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        log.info("%s %s %s", self.command, path, code)


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    logging.basicConfig(
        filename=config["log_file"], level=logging.INFO, format="%(asctime)s %(message)s"
    )
    STATE.key = RSAKey.import_key(
        Path(config["private_key_file"]).read_text(), parameters={"kid": config["kid"]}
    )
    STATE.audience = config["audience"]
    STATE.device_interval = config["device_interval"]
    STATE.device_lifetime = config["device_lifetime"]
    app = create_app(config["admin_token"])
    ssl_context = None
    if config.get("tls_cert_file"):
        ssl_context = (config["tls_cert_file"], config["tls_key_file"])
    server = make_server(
        config["host"],
        0,
        app,
        threaded=True,
        request_handler=_QuietHandler,
        ssl_context=ssl_context,
    )
    port = server.socket.getsockname()[1]
    scheme = "https" if ssl_context else "http"
    STATE.issuer = f"{scheme}://{config['public_host']}:{port}"
    # Written only once bound, atomically: the launcher reads it, then connects.
    port_file = Path(config["port_file"])
    port_file.with_suffix(".tmp").write_text(str(port))
    port_file.with_suffix(".tmp").replace(port_file)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
