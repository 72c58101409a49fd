"""A login's own IMAP connection, for commands that do their work without a running ``run``.

Without ``run`` there is no password lent by the mail program, so the login needs its
``password_command``; the connection is logged out whatever happens inside.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from ..config import LoginConfig
from ..credentials import password_from_command
from ..endpoints import client_tls_context
from .upstream import Upstream, connect

__all__ = ["own_connection"]


@contextlib.asynccontextmanager
async def own_connection(
    entry: LoginConfig, doing: str, error: type[Exception]
) -> AsyncIterator[Upstream]:
    """Log in as ``entry``; ``error`` (saying what ``doing`` needs) when it cannot."""
    if not entry.username or not entry.password_command:
        raise error(
            f"[[login]] {entry.username or entry.upstream_imap}: {doing} without "
            "`commsproxy run` needs username and password_command in the config"
        )
    password = await password_from_command(entry.password_command)
    worker = await connect(
        entry.upstream_imap, client_tls_context(entry.cafile), entry.username, password
    )
    try:
        yield worker
    finally:
        await worker.logout()
