"""Start and drive the test bed's OAuth2 / OpenID authorization server (tests/testbed/oauth_app.py).

The server is a real HTTP server in its own process on a kernel-chosen loopback port. This
module generates its RS256 signing key, starts it, waits until it answers, and offers the
test-only controls (users, clients, revoking a user's grants, the event log) as methods.
:meth:`OAuthServer.dovecot_validation` gives what a Dovecot needs to check its tokens.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.testbed.certs import make_localhost_certs
from tests.testbed.dovecot import _die_with_us, _env_flag
from tests.testbed.oauth_dovecot import OAuth2Validation

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# The redirect URI clients register, as in commsproxy's Microsoft manifest entry; any port
# on it is accepted (RFC 8252 7.3), so http://127.0.0.1:PORT matches.
LOOPBACK_REDIRECT = "http://127.0.0.1"
_LOG_TAIL_LINES = 40


class OAuthServerError(RuntimeError):
    """The authorization server could not be started or driven."""


@dataclass(frozen=True)
class OAuthUser:
    """A person who can sign in at the server's login page."""

    username: str
    password: str


@dataclass(frozen=True)
class OAuthClient:
    """A registered client. Public (PKCE, no secret) unless ``client_secret`` is set.

    ``access_token_lifetime`` is the JWT lifetime in seconds: use 2 to force refreshes.
    ``rotate_refresh_tokens=False`` behaves like Google (the refresh token stays the same);
    True like Microsoft (each refresh returns a new one, reusing an old one ends the sign-in).
    """

    client_id: str
    client_secret: str | None = None
    redirect_uris: tuple[str, ...] = (LOOPBACK_REDIRECT,)
    access_token_lifetime: int = 300
    refresh_token_lifetime: int | None = None
    rotate_refresh_tokens: bool = True
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token", DEVICE_GRANT)

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]


@dataclass
class OAuthServer:
    """One authorization server; use as a context manager or call :meth:`start` / :meth:`stop`.

    ``audience`` is the ``aud`` of access tokens (Dovecot 2.3 does not check it).
    ``device_interval`` is the polling interval the device grant announces (and enforces
    with ``slow_down``). ``tls`` serves HTTPS with a localhost certificate from
    :attr:`ca_file`.
    """

    audience: str = "urn:commsproxy:testbed:mail"
    device_interval: int = 1
    device_lifetime: int = 600
    tls: bool = False
    start_timeout: float = 20.0
    kid: str = field(default_factory=lambda: f"testbed-{secrets.token_hex(4)}")

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="commsproxy-oauth-"))
        self.log_file = self.root / "server.log"
        self._port_file = self.root / "port"
        self._admin_token = f"Bearer {secrets.token_urlsafe(24)}"
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_key_file = self.root / "signing-key.pem"
        self._private_key_file.write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.public_key_pem = (
            private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        self.ca_file: Path | None = None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> OAuthServer:
        """Start the server and return once its discovery document is served."""
        config: dict[str, Any] = {
            "host": HOST,
            "public_host": HOST,
            "port_file": str(self._port_file),
            "log_file": str(self.log_file),
            "private_key_file": str(self._private_key_file),
            "kid": self.kid,
            "audience": self.audience,
            "admin_token": self._admin_token,
            "device_interval": self.device_interval,
            "device_lifetime": self.device_lifetime,
        }
        if self.tls:
            certs = make_localhost_certs(self.root / "tls")
            self.ca_file = certs.ca_file
            config.update(tls_cert_file=str(certs.cert_file), tls_key_file=str(certs.key_file))
        config_file = self.root / "config.json"
        config_file.write_text(json.dumps(config))
        config_file.chmod(0o600)  # holds the admin secret
        try:
            with (self.root / "server.out").open("wb") as out:
                self._proc = subprocess.Popen(
                    [
                        *_die_with_us(),
                        sys.executable,
                        "-m",
                        "tests.testbed.oauth_app",
                        str(config_file),
                    ],
                    cwd=REPO_ROOT,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if not _env_flag("KEEP_OAUTH"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OAuthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- where things are ------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/authorize"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.issuer}/device_authorization"

    @property
    def revocation_endpoint(self) -> str:
        return f"{self.issuer}/revoke"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context trusting this server's CA when ``tls``; None for plain HTTP."""
        if self.ca_file is None:
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))

    def dovecot_validation(self) -> OAuth2Validation:
        """What a Dovecot needs to validate this server's access tokens locally."""
        return OAuth2Validation(
            issuer=self.issuer, kid=self.kid, alg="RS256", public_key_pem=self.public_key_pem
        )

    # -- test-only controls ----------------------------------------------------------------

    def add_user(self, username: str, password: str) -> OAuthUser:
        self._admin("POST", "/testbed/users", {"username": username, "password": password})
        return OAuthUser(username, password)

    def register_client(self, client_id: str | None = None, **settings: Any) -> OAuthClient:
        """Register a client (fresh id unless given); ``settings`` are OAuthClient fields."""
        client = OAuthClient(client_id or f"client-{secrets.token_hex(4)}", **settings)
        self._admin("POST", "/testbed/clients", asdict(client))
        return client

    def revoke_user(self, username: str) -> int:
        """End every sign-in of ``username`` (as if they removed the app's access).

        Returns how many refresh tokens that revoked. Access tokens already issued stay
        valid until they expire, as with real providers.
        """
        result = self._admin("POST", "/testbed/revoke-user", {"username": username})
        return int(result["revoked"])

    def events(self, kind: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """What happened, oldest first: ``login``, ``consent``, ``access_token`` (with
        ``grant_type``), ``refreshed``, ``refresh_token_reuse``, ``revoked``,
        ``device_decision``, ``login_failed``; filtered by kind and field values."""
        found: list[dict[str, Any]] = self._admin("GET", "/testbed/events", None)
        return [
            event
            for event in found
            if (kind is None or event["event"] == kind)
            and all(event.get(key) == value for key, value in match.items())
        ]

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- internals -------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.issuer + path,
            data=data,
            method=method,
            headers={"Authorization": self._admin_token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.ssl_context()) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise OAuthServerError(f"{method} {path} failed: {exc.code} {exc.read()!r}") from exc

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        last_error: Exception | None = None
        while True:
            if self._proc.poll() is not None:
                raise self._startup_error(f"server exited with status {self._proc.returncode}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._startup_error(
                    f"not serving within {self.start_timeout:g}s ({last_error})"
                )
            if self.port == 0 and self._port_file.exists():
                self.port = int(self._port_file.read_text())
            if self.port:
                try:
                    with socket.create_connection((HOST, self.port), timeout=remaining):
                        pass
                    with urllib.request.urlopen(
                        self.metadata_url, timeout=remaining, context=self.ssl_context()
                    ) as resp:
                        if json.loads(resp.read())["issuer"] == self.issuer:
                            return
                except OSError as exc:
                    last_error = exc
            # Still importing Flask and authlib: poll again, and notice at once if it died.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=0.05)

    def _startup_error(self, reason: str) -> OAuthServerError:
        parts = [f"OAuth server in {self.root} failed to start: {reason}"]
        with contextlib.suppress(FileNotFoundError):
            out = (self.root / "server.out").read_text(errors="replace").strip()
            if out:
                parts.append(f"--- server output ---\n{out}")
        tail = self.log_text().splitlines()[-_LOG_TAIL_LINES:]
        if tail:
            parts.append("--- tail of server.log ---\n" + "\n".join(tail))
        return OAuthServerError("\n".join(parts))
