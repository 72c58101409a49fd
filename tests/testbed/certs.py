"""Throwaway TLS material for the test bed: a private CA and a localhost server cert.

Dovecot serves the leaf cert; test clients trust only the CA file, so TLS is verified for
real (hostname and chain) without touching the system trust store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsFiles:
    """PEM files written by :func:`make_localhost_certs`."""

    ca_file: Path
    """The CA certificate a client should trust."""
    cert_file: Path
    """The server certificate chain (leaf first)."""
    key_file: Path
    """The server private key."""


def make_localhost_certs(directory: Path) -> TlsFiles:
    """Write a fresh CA and a cert for CN=localhost, SAN DNS:localhost + IP:127.0.0.1.

    Both SANs are needed: Python clients connect to 127.0.0.1, while some Debian clients
    (isync, offlineimap3) ignore IP SANs and must connect to ``localhost``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="commsproxy test bed")
    leaf = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")

    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "cert.pem",
        key_file=directory / "key.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca_file))
    # The served chain is the leaf (trustme adds no intermediates); the root stays out of it
    # because clients are meant to trust it from ca_file, as with a real private CA.
    files.cert_file.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(files.key_file))
    # Dovecot reads the key as the master user (root or us); nobody else needs it.
    os.chmod(files.key_file, 0o600)
    return files
