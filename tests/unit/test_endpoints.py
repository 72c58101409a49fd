"""Upstream URLs (schemes, default ports, no plain text off this machine) and listen addresses."""

from __future__ import annotations

import pytest

from commsproxy.endpoints import (
    Endpoint,
    EndpointError,
    ListenAddress,
    Security,
    is_loopback,
    parse_endpoint,
    parse_listen,
)


@pytest.mark.parametrize(
    ("url", "protocol", "host", "port", "security"),
    [
        ("imaps://imap.example.com", "imap", "imap.example.com", 993, Security.IMPLICIT_TLS),
        ("imaps://imap.example.com:1993", "imap", "imap.example.com", 1993, Security.IMPLICIT_TLS),
        ("imap+starttls://imap.example.com", "imap", "imap.example.com", 143, Security.STARTTLS),
        ("imap://127.0.0.1", "imap", "127.0.0.1", 143, Security.PLAIN),
        ("imap://localhost:10143", "imap", "localhost", 10143, Security.PLAIN),
        ("smtps://smtp.example.com", "smtp", "smtp.example.com", 465, Security.IMPLICIT_TLS),
        ("smtp+starttls://smtp.example.com", "smtp", "smtp.example.com", 587, Security.STARTTLS),
        ("smtp+starttls://smtp.example.com:25", "smtp", "smtp.example.com", 25, Security.STARTTLS),
        ("smtp://[::1]", "smtp", "::1", 25, Security.PLAIN),
        ("IMAPS://IMAP.Example.COM", "imap", "imap.example.com", 993, Security.IMPLICIT_TLS),
        ("  imaps://imap.example.com  ", "imap", "imap.example.com", 993, Security.IMPLICIT_TLS),
        ("imaps://[2001:db8::1]:993", "imap", "2001:db8::1", 993, Security.IMPLICIT_TLS),
    ],
)
def test_parse_endpoint(url: str, protocol: str, host: str, port: int, security: Security) -> None:
    endpoint = parse_endpoint(url, protocol)
    assert (endpoint.host, endpoint.port, endpoint.security) == (host, port, security)
    assert endpoint.url == url


def test_endpoint_str_is_host_and_port() -> None:
    assert str(parse_endpoint("imaps://imap.example.com", "imap")) == "imap.example.com:993"


@pytest.mark.parametrize(
    "url",
    ["imap://127.0.0.1", "imap://127.1.2.3:143", "imap://[::1]:143", "imap://localhost"],
)
def test_plain_to_loopback_is_allowed(url: str) -> None:
    assert parse_endpoint(url, "imap").security is Security.PLAIN


@pytest.mark.parametrize(
    ("url", "protocol"),
    [
        ("imap://imap.example.com", "imap"),
        ("imap://192.0.2.1:143", "imap"),
        ("imap://localhost.example.com", "imap"),
        ("imap://127.0.0.1.example.com", "imap"),
        ("imap://[2001:db8::1]", "imap"),
        ("smtp://smtp.example.com:25", "smtp"),
    ],
)
def test_plain_to_a_remote_host_is_refused(url: str, protocol: str) -> None:
    with pytest.raises(EndpointError, match="allow-insecure") as info:
        parse_endpoint(url, protocol)
    message = str(info.value)
    assert "allow_insecure" in message
    assert f"{protocol}s://" in message
    assert f"{protocol}+starttls://" in message
    allowed = parse_endpoint(url, protocol, allow_insecure=True)
    assert allowed.security is Security.PLAIN


@pytest.mark.parametrize(
    ("url", "protocol", "match"),
    [
        ("http://imap.example.com", "imap", "expected a URL starting with imaps://"),
        ("smtps://smtp.example.com", "imap", "imap\\+starttls://"),
        ("imaps://imap.example.com", "smtp", "smtps://"),
        ("imap.example.com", "imap", "expected a URL"),
        ("imap.example.com:993", "imap", "expected a URL"),
        ("", "imap", "expected a URL"),
        ("imaps://", "imap", "no host name"),
        ("imaps://:993", "imap", "no host name"),
        ("imaps://imap.example.com:99999", "imap", "bad port"),
        ("imaps://imap.example.com:abc", "imap", "bad port"),
    ],
)
def test_bad_urls(url: str, protocol: str, match: str) -> None:
    with pytest.raises(EndpointError, match=match):
        parse_endpoint(url, protocol)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("::", False),
        ("example.com", False),
        ("localhost.example.com", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("value", "address", "text"),
    [
        ("127.0.0.1:1143", ListenAddress("127.0.0.1", 1143), "127.0.0.1:1143"),
        ("[::1]:1143", ListenAddress("::1", 1143), "[::1]:1143"),
        ("localhost:0", ListenAddress("localhost", 0), "localhost:0"),
        ("0.0.0.0:65535", ListenAddress("0.0.0.0", 65535), "0.0.0.0:65535"),
        (" 127.0.0.1:993 ", ListenAddress("127.0.0.1", 993), "127.0.0.1:993"),
    ],
)
def test_parse_listen(value: str, address: ListenAddress, text: str) -> None:
    assert parse_listen(value) == address
    assert str(parse_listen(value)) == text


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1143",
        "localhost",
        ":1143",
        "127.0.0.1:",
        "127.0.0.1:port",
        "127.0.0.1:-1",
        "127.0.0.1:65536",
        "[::1]",
        "127.0.0.1:11 43",
    ],
)
def test_parse_listen_errors(value: str) -> None:
    with pytest.raises(EndpointError, match=r"expected HOST:PORT, e\.g\. 127\.0\.0\.1:1143"):
        parse_listen(value)


def test_parse_listen_non_ascii_digit_port_is_an_endpoint_error() -> None:
    """BUG: ``str.isdigit`` accepts "²", which ``int`` then refuses with a bare ValueError.

    ``service.plan`` catches only EndpointError, so ``commsproxy run --listen 127.0.0.1:²``
    ends in a traceback instead of a usage error naming --listen.
    """
    with pytest.raises(EndpointError):
        parse_listen("127.0.0.1:\u00b2")


def test_endpoints_compare_by_value() -> None:
    endpoint = parse_endpoint("imaps://imap.example.com", "imap")
    assert endpoint == Endpoint(
        "imaps://imap.example.com", "imap.example.com", 993, endpoint.security
    )
    assert hash(endpoint) == hash(parse_endpoint("imaps://imap.example.com", "imap"))
