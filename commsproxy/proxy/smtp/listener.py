"""Accepting SMTP clients on the local submission port."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

from ...endpoints import Endpoint, ListenAddress, is_loopback
from ..heap import tune_malloc
from ..oauth_logins import OAuthLogins
from ..routing import LoginRoutes, describe
from .handler import DEFAULT_MAX_IN_FLIGHT, RelayHandler, RelaySMTP, SentHook

__all__ = ["SmtpListener", "SmtpListenerSettings"]

log = logging.getLogger("commsproxy.smtp")

# aiosmtpd logs every connection at INFO and warns about its own use of a deprecated
# attribute on every AUTH; our own lines say what matters.
logging.getLogger("mail.log").setLevel(logging.ERROR)


@dataclass(frozen=True)
class SmtpListenerSettings:
    upstream: Endpoint
    upstream_tls: ssl.SSLContext
    listen: ListenAddress
    local_tls: ssl.SSLContext | None = None  # enables STARTTLS
    size_limit: int = 50 << 20
    routes: LoginRoutes | None = None  # several logins: the AUTH user name picks the server
    #: The bytes of all messages being received or relayed at once; over it, ``452 4.3.1``.
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    #: Where messages too big for memory are spooled (owner-only, unlinked); None: the
    #: system's temporary directory.
    spool_dir: Path | None = None


class SmtpListener:
    def __init__(
        self,
        settings: SmtpListenerSettings,
        on_sent: SentHook | None = None,
        oauth: OAuthLogins | None = None,
    ) -> None:
        self.settings = settings
        self.handler = RelayHandler(
            settings.upstream,
            settings.upstream_tls,
            on_sent=on_sent,
            routes=settings.routes,
            oauth=oauth,
            max_in_flight=settings.max_in_flight,
            spool_dir=settings.spool_dir,
        )
        self._server: asyncio.Server | None = None
        self.address: ListenAddress | None = None

    async def start(self) -> None:
        s = self.settings
        # On loopback nobody can listen in, so AUTH is offered without TLS (mail clients on
        # the same machine expect that); on any other address a password needs TLS first.
        require_tls = not is_loopback(s.listen.host)

        def factory() -> RelaySMTP:
            return RelaySMTP(
                self.handler,
                hostname="localhost",
                data_size_limit=s.size_limit,
                # Not offered: the upstream may not support it, and a client that relies on it
                # would then fail at MAIL FROM instead of downgrading.
                enable_SMTPUTF8=False,
                tls_context=s.local_tls,
                auth_require_tls=require_tls,
            )

        # Big messages come in here: their memory must go back to the system once they are
        # gone (process-wide, and harmless for the rest; see heap.py).
        tune_malloc()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(factory, s.listen.host, s.listen.port)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = ListenAddress(host, port)
        kind = "STARTTLS" if s.local_tls else "plain"
        log.info(
            "SMTP listening on %s (%s) -> upstream %s",
            self.address,
            kind,
            describe(s.upstream, s.routes),
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; transactions in progress get ``grace`` seconds to finish."""
        if self._server is None:
            return
        self._server.close()
        try:
            await asyncio.wait_for(self._server.wait_closed(), grace)
        except TimeoutError:
            log.warning("smtp: sessions still open after %g s; closing them", grace)
        await self.handler.close_all()
