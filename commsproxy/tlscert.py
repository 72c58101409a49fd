"""A self-signed certificate for TLS between local mail clients and commsproxy.

Mail clients on the same machine can talk to commsproxy in plain text safely, but some (Outlook,
Apple Mail) insist on TLS; ``commsproxy init --cert`` makes a certificate for ``localhost`` and
127.0.0.1/::1 that the user trusts once in the client.
"""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .private_files import write_private_bytes

__all__ = ["write_self_signed"]

# Apple platforms reject server certificates valid for longer than 825 days.
VALID_DAYS = 825


def write_self_signed(cert_path: Path, key_path: Path) -> None:
    """Write a new key and a self-signed localhost certificate (PEM), both mode 0600."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_bytes(key_path, key_bytes)
    # The certificate is public, but it lives beside the key and the config: the same mode.
    write_private_bytes(cert_path, cert.public_bytes(serialization.Encoding.PEM))
