"""The SMTP side's own replies: enhanced status codes, and no exception text for a client."""

from __future__ import annotations

import logging
import ssl

import pytest

from commsproxy.endpoints import Endpoint, Security
from commsproxy.proxy.smtp.handler import (
    INTERNAL_ERROR,
    RelayHandler,
    RelaySMTP,
    with_enhanced_code,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("500 Error: bad syntax", "500 5.5.2 Error: bad syntax"),
        ("503 Error: send HELO first", "503 5.5.1 Error: send HELO first"),
        ("501 Syntax: MAIL FROM: <address>", "501 5.5.4 Syntax: MAIL FROM: <address>"),
        ("554 Command refused (no TLS)", "554 5.7.0 Command refused (no TLS)"),
        ("599 odd", "599 5.0.0 odd"),
        ("535 5.7.8 already has one", "535 5.7.8 already has one"),
        ("250 OK", "250 OK"),  # only refusals
        ("354 End data with <CR><LF>.<CR><LF>", "354 End data with <CR><LF>.<CR><LF>"),
    ],
)  # fmt: skip
def test_refusals_get_an_enhanced_code(status: str, expected: str) -> None:
    assert with_enhanced_code(status) == expected


async def test_an_unexpected_error_gets_words_and_the_log_gets_the_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    upstream = Endpoint("smtp://127.0.0.1:1", "127.0.0.1", 1, Security.PLAIN)
    server = RelaySMTP(RelayHandler(upstream, ssl.create_default_context()))
    with caplog.at_level(logging.ERROR, "commsproxy.smtp"):
        reply = await server.handle_exception(KeyError("secret detail"))
    assert reply == INTERNAL_ERROR
    assert reply.startswith("451 4.3.0 ")
    assert "KeyError" not in reply
    assert "secret detail" not in reply
    assert "secret detail" in caplog.text  # the traceback is in the log
