"""A look at a message after DATA and before it goes upstream: the hook triage answers.

The SMTP side and triage do not import each other (ARCHITECTURE.md); ``service.py`` sets an
:class:`OutgoingCheck` on the relay handler, which asks it about each message whose data is
complete. The check may keep the message back (``Verdict.refusal``, an SMTP reply with an
enhanced code) or ask for something to be done once it is sent (``Verdict.after_sent``). Its
verdict is anything with those two attributes (triage's ``collision.py`` has its own class).

The relay bounds both (``RelayHandler.check_timeout``): a check that takes longer, or fails,
lets the message go, and that is logged. A reply must never be lost or blocked by a look
that is slow or broken.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["SEND", "Outgoing", "OutgoingCheck", "Verdict"]


@dataclass(frozen=True)
class Outgoing:
    """A message as it is about to be relayed."""

    user: str | None  # the AUTH user name; None without AUTH
    mail_from: str  # "" for the null sender
    rcpt_tos: tuple[str, ...]  # the real recipients (no follow-up address)
    head: bytes  # its header block as it will be sent; b"" when it could not be found
    content: Callable[[], bytes]  # the whole message as it will be sent, read when asked


class Verdict(Protocol):
    @property
    def refusal(self) -> str | None:
        """An SMTP reply (5xx with an enhanced code): the message is not sent; None: it is."""

    @property
    def after_sent(self) -> Callable[[], Awaitable[None]] | None:
        """Run (bounded) once the upstream has accepted the message, before the client's 250."""


@dataclass(frozen=True)
class _Send:
    refusal: str | None = None
    after_sent: Callable[[], Awaitable[None]] | None = None


SEND: Verdict = _Send()  # the message goes as it is


class OutgoingCheck(Protocol):
    async def check(self, message: Outgoing) -> Verdict: ...
