"""Thunderbird's autoconfig file for commsproxy's own listeners (Mozilla's ``config-v1.1.xml``).

Thunderbird fills in an account's server settings from this file when it finds it for the
address's domain: in the ``isp/`` folder of its installation (named ``DOMAIN.xml``), or served at
``https://autoconfig.DOMAIN/mail/config-v1.1.xml``. The servers it names are commsproxy's
listeners, never the real ones, with the security the listeners offer: STARTTLS (and implicit
TLS on the imaps port) when ``[proxy] tls_cert`` is set, else none, which only loopback allows.
Format: https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .config import Config
from .endpoints import ListenAddress

__all__ = ["FILENAME", "autoconfig_domain", "autoconfig_xml", "write_autoconfig"]

FILENAME = "config-v1.1.xml"
_ANY = ("0.0.0.0", "::", "")


def _host(address: ListenAddress) -> str:
    # A listener on every address is reached on this machine at the loopback address.
    return "127.0.0.1" if address.host in _ANY else address.host


def _server(parent: ET.Element, tag: str, kind: str, address: ListenAddress, socket: str,
            username: str) -> None:  # fmt: skip
    server = ET.SubElement(parent, tag, type=kind)
    ET.SubElement(server, "hostname").text = _host(address)
    ET.SubElement(server, "port").text = str(address.port)
    ET.SubElement(server, "socketType").text = socket
    # LOGIN / AUTH PLAIN: what commsproxy's listeners take (the password goes on upstream).
    ET.SubElement(server, "authentication").text = "password-cleartext"
    ET.SubElement(server, "username").text = username


def autoconfig_domain(config: Config) -> str:
    """The mail domain the file is for: that of the first login's address."""
    names = [login.username for login in config.logins if login.username]
    return next((name.rpartition("@")[2] for name in names if "@" in name), "localhost")


def autoconfig_xml(config: Config, domain: str | None = None) -> str:
    """The autoconfig XML for ``config``'s listeners.

    ``domain`` defaults to the domain of the first login's username; the user name is that
    login's when there is exactly one, else Thunderbird's ``%EMAILADDRESS%``.
    """
    usernames = [login.username for login in config.logins if login.username]
    domain = domain or autoconfig_domain(config)
    username = usernames[0] if len(config.logins) == 1 and usernames else "%EMAILADDRESS%"
    proxy = config.proxy
    root = ET.Element("clientConfig", version="1.1")
    provider = ET.SubElement(root, "emailProvider", id=f"commsproxy.{domain}")
    ET.SubElement(provider, "domain").text = domain
    ET.SubElement(provider, "displayName").text = f"{domain} through commsproxy"
    ET.SubElement(provider, "displayShortName").text = "commsproxy"
    tls = proxy.tls_cert is not None
    if tls:  # the first of each kind is the one Thunderbird picks
        _server(provider, "incomingServer", "imap", proxy.imap, "STARTTLS", username)
        _server(provider, "incomingServer", "imap", proxy.imaps, "SSL", username)
        _server(provider, "outgoingServer", "smtp", proxy.smtp, "STARTTLS", username)
    else:
        _server(provider, "incomingServer", "imap", proxy.imap, "plain", username)
        _server(provider, "outgoingServer", "smtp", proxy.smtp, "plain", username)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def write_autoconfig(path: Path, config: Config, domain: str | None = None) -> Path:
    """Write the autoconfig XML to ``path`` (a directory gets ``config-v1.1.xml`` in it)."""
    if path.is_dir():
        path = path / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(autoconfig_xml(config, domain), encoding="utf-8")
    return path
