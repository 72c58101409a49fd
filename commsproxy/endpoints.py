"""Where commsproxy listens and which upstream servers it talks to, and how securely.

An upstream is written as a URL (``imaps://imap.example.com:993``,
``smtp+starttls://smtp.example.com:587``). Plain ``imap://``/``smtp://`` is accepted only for a
loopback host or when the user says ``allow_insecure``: a password sent in clear over a network is
a mistake this program should not make quietly. Upstream certificates are always verified, against
the system CAs plus an optional extra CA file.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "Endpoint",
    "EndpointError",
    "ListenAddress",
    "Security",
    "client_tls_context",
    "is_loopback",
    "parse_endpoint",
    "parse_listen",
    "server_tls_context",
]


class EndpointError(ValueError):
    """A URL or address that cannot be used; the message says what was expected."""


class Security(Enum):
    IMPLICIT_TLS = "implicit TLS"
    STARTTLS = "STARTTLS"
    PLAIN = "plain text"


_SCHEMES: dict[str, dict[str, tuple[Security, int]]] = {
    "imap": {
        "imaps": (Security.IMPLICIT_TLS, 993),
        "imap+starttls": (Security.STARTTLS, 143),
        "imap": (Security.PLAIN, 143),
    },
    "smtp": {
        "smtps": (Security.IMPLICIT_TLS, 465),
        "smtp+starttls": (Security.STARTTLS, 587),
        "smtp": (Security.PLAIN, 25),
    },
}


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An upstream server: host, port and how the link is secured."""

    url: str
    host: str
    port: int
    security: Security

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_endpoint(url: str, protocol: str, *, allow_insecure: bool = False) -> Endpoint:
    """Parse an upstream URL for ``protocol`` ("imap" or "smtp")."""
    schemes = _SCHEMES[protocol]
    expected = ", ".join(f"{scheme}://" for scheme in schemes)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise EndpointError(f"{url!r}: expected a URL starting with {expected}")
    if not parts.hostname:
        raise EndpointError(f"{url!r}: no host name (expected e.g. {scheme}://mail.example.com)")
    try:
        port = parts.port
    except ValueError as err:
        raise EndpointError(f"{url!r}: bad port ({err})") from None
    security, default_port = schemes[scheme]
    if port == 0:
        raise EndpointError(f"{url!r}: port 0 is not a server port")
    if security is Security.PLAIN and not allow_insecure and not is_loopback(parts.hostname):
        raise EndpointError(
            f"{url!r}: plain {protocol}:// would send your password unencrypted to "
            f"{parts.hostname}; use {protocol}s:// or {protocol}+starttls://, "
            "or allow it explicitly (--allow-insecure, or allow_insecure = true in [[login]])"
        )
    return Endpoint(url, parts.hostname, default_port if port is None else port, security)


def parse_listen(value: str) -> ListenAddress:
    """Parse ``HOST:PORT`` (``[::1]:1143`` for IPv6); port 0 picks a free port."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise EndpointError(f"{value!r}: expected HOST:PORT, e.g. 127.0.0.1:1143")
    return ListenAddress(host.strip("[]"), int(port))


def client_tls_context(cafile: Path | None = None) -> ssl.SSLContext:
    """A verifying context for upstream links: system CAs plus ``cafile``."""
    context = ssl.create_default_context()
    if cafile is not None:
        context.load_verify_locations(cafile=str(cafile))
    return context


def server_tls_context(certfile: Path, keyfile: Path | None = None) -> ssl.SSLContext:
    """The context for TLS towards local clients, from a PEM certificate and key."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
    return context
