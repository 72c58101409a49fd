"""Which upstream server a client belongs to, by the user name it logs in with.

With one ``[[login]]`` every client goes to its server, and the relay connects before the client
says anything. With several, the logins may live on different servers (work and personal mail,
two providers), so the user name decides; a name no login claims is refused rather than sent to
some server that would be handed the password of another.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass

from ..endpoints import Endpoint

__all__ = ["LoginRoutes", "UpstreamServer", "describe"]


@dataclass(frozen=True)
class UpstreamServer:
    """An upstream server and the TLS context that verifies it (each login may name a CA)."""

    endpoint: Endpoint
    tls: ssl.SSLContext


@dataclass(frozen=True)
class LoginRoutes:
    """User name (compared without case) -> the server that user logs in to."""

    servers: Mapping[str, UpstreamServer]

    @classmethod
    def of(cls, entries: Mapping[str, UpstreamServer]) -> LoginRoutes:
        return cls({user.strip().lower(): server for user, server in entries.items()})

    def server_for(self, user: str) -> UpstreamServer | None:
        return self.servers.get(user.strip().lower())


def describe(default: Endpoint, routes: LoginRoutes | None) -> str:
    """Where clients go, for the logs."""
    if routes is None:
        return str(default)
    servers = sorted({str(server.endpoint) for server in routes.servers.values()})
    return "by user name: " + ", ".join(servers)
