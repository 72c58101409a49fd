"""Connect, greet, secure and log in: a ready :class:`ImapClient` or one clear error."""

from __future__ import annotations

import ssl

from ..endpoints import Endpoint
from .client import MAX_LINE, MAX_MESSAGE, ImapClient
from .connect import open_link
from .login import Login

__all__ = ["connect"]


async def connect(
    endpoint: Endpoint,
    tls: ssl.SSLContext,
    login: Login | None = None,
    *,
    seconds: float = 30.0,
    max_line: int = MAX_LINE,
    max_message: int = MAX_MESSAGE,
) -> ImapClient:
    """A client on ``endpoint`` (TLS as it says), with capabilities read and ``login`` done.

    Raises ConnectError when the server cannot be reached, secured or greets badly;
    CommandNo/CommandBad when it refuses the login; ConnectionLost when it drops meanwhile.
    ``seconds`` bounds the connect and each command after it (the client's default).
    """
    reader, writer, greeting = await open_link(endpoint, tls, seconds, no_delay=True)
    client = ImapClient(
        reader,
        writer,
        name=str(endpoint),
        greeting=greeting or b"",
        timeout=seconds,
        max_line=max_line,
        max_message=max_message,
    )
    try:
        if not client.capabilities:  # not in the greeting, or made stale by STARTTLS
            await client.command("CAPABILITY")
        if login is not None:
            await login(client)
    except BaseException:
        await client.close()
        raise
    return client
