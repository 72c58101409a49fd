"""Accepting IMAP clients: the plain/STARTTLS and implicit-TLS listeners and their sessions.

The listener owns the set of live sessions so that shutdown can stop accepting, say BYE to every
client and wait for them, and so that a flood of connections is refused with a BYE instead of
exhausting file descriptors or the upstream's per-user connection limit. How many it takes is
sized from the open-file limit at start (open_files.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field

from ...endpoints import Endpoint, ListenAddress
from ..heap import tune_malloc
from ..routing import LoginRoutes, UpstreamServer, describe
from .hooks import (
    DISCONNECTS,
    LoginObserver,
    NoHooks,
    RelayHooks,
    RelayLimits,
    SessionParts,
    UpstreamLogin,
)
from .open_files import connection_limit, raise_open_files
from .relay import Session

__all__ = ["ImapListener", "ImapListenerSettings"]

log = logging.getLogger("commsproxy.imap")


@dataclass(frozen=True)
class ImapListenerSettings:
    upstream: Endpoint
    upstream_tls: ssl.SSLContext
    listen: ListenAddress
    tls_listen: ListenAddress | None = None  # implicit TLS, needs local_tls
    local_tls: ssl.SSLContext | None = None  # enables STARTTLS on ``listen``
    limits: RelayLimits = field(default_factory=RelayLimits)
    max_connections: int | None = None  # None: as many as the open-file limit allows
    routes: LoginRoutes | None = None  # several logins: the user name picks the server


class ImapListener:
    """``hooks`` drive the gate; ``logins`` hears of each accepted login (with its secret);
    ``upstream_login`` turns a client's login into the upstream's (see hooks.py)."""

    def __init__(
        self,
        settings: ImapListenerSettings,
        hooks: RelayHooks | None = None,
        *,
        logins: LoginObserver | None = None,
        upstream_login: UpstreamLogin | None = None,
    ) -> None:
        self.settings = settings
        self.hooks = hooks
        self._parts = SessionParts(
            UpstreamServer(settings.upstream, settings.upstream_tls),
            settings.local_tls,
            settings.limits,
            hooks or NoHooks(),
            settings.routes,
            logins,
            upstream_login,
        )
        self.sessions: set[Session] = set()
        self.max_connections = settings.max_connections or 1  # sized in start()
        self._servers: list[asyncio.Server] = []
        self.addresses: list[ListenAddress] = []

    async def start(self) -> None:
        s = self.settings
        limit = connection_limit(s.max_connections, raise_open_files())
        self.max_connections = limit.value
        tune_malloc()
        if (why := limit.warning()) is not None:
            log.warning("imap: %s", why)
        files = f"open-file limit {limit.open_files}" if limit.open_files else "limit unknown"
        log.info("imap: taking up to %d client connections (%s)", limit.value, files)
        binds: list[tuple[ListenAddress, ssl.SSLContext | None]] = [(s.listen, None)]
        if s.tls_listen is not None and s.local_tls is not None:
            binds.append((s.tls_listen, s.local_tls))
        for address, tls in binds:
            server = await asyncio.start_server(
                self._accept, address.host, address.port, ssl=tls, limit=1 << 16
            )
            self._servers.append(server)
            host, port = server.sockets[0].getsockname()[:2]
            bound = ListenAddress(host, port)
            self.addresses.append(bound)
            kind = "implicit TLS" if tls else ("STARTTLS" if s.local_tls else "plain")
            where = describe(s.upstream, s.routes)
            log.info("IMAP listening on %s (%s) -> upstream %s", bound, kind, where)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.sessions) >= self.max_connections:
            log.warning("imap: refusing a client: %d connections open", len(self.sessions))
            writer.write(b"* BYE [UNAVAILABLE] commsproxy: too many connections\r\n")
            writer.close()
            return
        session = Session(reader, writer, self._parts)
        self.sessions.add(session)
        try:
            await session.run()
        except DISCONNECTS as err:
            log.debug("%s: client left: %r", session, err)
        except Exception:
            # One broken session must never take the listener down with it.
            log.exception("%s: unexpected error", session)
        finally:
            self.sessions.discard(session)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, say BYE to every client, and wait up to ``grace`` seconds."""
        for server in self._servers:
            server.close()
        if self.sessions:
            log.info("imap: closing %d sessions", len(self.sessions))
            tasks = [asyncio.create_task(s.shutdown()) for s in list(self.sessions)]
            done, _ = await asyncio.wait(tasks, timeout=grace)
            for task in done:  # retrieved: a client gone mid-BYE is no error worth a warning
                if not task.cancelled() and task.exception() is not None:
                    log.debug("imap: closing a session: %r", task.exception())
        for server in self._servers:
            await server.wait_closed()
