"""The SMTP relay that Dovecot's submission service hands outgoing mail to.

Dovecot's ``submission_relay_host`` only speaks SMTP (EHLO), so it cannot point straight at
Dovecot's own LMTP listener. This small aiosmtpd server sits in between: it captures every
message it is given to a directory (so tests can see what "left" the system) and passes
recipients that are local Dovecot users on to LMTP, so they show up in their INBOX.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import smtplib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Bounds every step of the LMTP hand-off; Dovecot answers in milliseconds.
_LMTP_TIMEOUT = 30.0


# Recipients whose address starts with this are refused at RCPT.
REFUSED_PREFIX = "refuse-"


@dataclass(frozen=True)
class CapturedMessage:
    """One message as the relay received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class _Handler:
    """aiosmtpd handler: capture, then deliver local recipients through LMTP."""

    def __init__(self, target: RelayTarget) -> None:
        self._target = target

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        # A way for tests to see a recipient refused by the far end of the chain.
        if address.lower().startswith(REFUSED_PREFIX):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content
        if isinstance(content, str):  # only with decode_data=True, which we never set
            content = content.encode("utf-8", "surrogateescape")
        captured = CapturedMessage(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            content=content or b"",
        )
        name = self._target._store(captured)
        local = [rcpt for rcpt in captured.rcpt_tos if self._target.is_local(rcpt)]
        try:
            # smtplib blocks; keep it off the server's event loop.
            await asyncio.to_thread(self._target._deliver_lmtp, captured, local)
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 local delivery of {name} failed: {exc}"
        # No enhanced code here: Dovecot prefixes its own "2.0.0" to our text.
        return f"250 captured as {name}"


class RelayTarget:
    """An aiosmtpd server on ``host:port`` in its own thread (see module docstring).

    ``is_local(address)`` decides which recipients are handed to LMTP at
    ``lmtp_host:lmtp_port``; every message is captured regardless.
    """

    def __init__(
        self,
        capture_dir: Path,
        *,
        port: int,
        lmtp_port: int,
        is_local: Callable[[str], bool],
        host: str = "127.0.0.1",
        lmtp_host: str = "127.0.0.1",
    ) -> None:
        self.capture_dir = capture_dir
        self.host = host
        self.port = port
        self.lmtp_host = lmtp_host
        self.lmtp_port = lmtp_port
        self.is_local = is_local
        self._seq = itertools.count(1)
        self._controller: Controller | None = None

    def start(self) -> None:
        self.capture_dir.mkdir(parents=True, exist_ok=True)
        # Made here, not in __init__: the Controller owns an event loop that only stop()
        # closes, and an unclosed loop is a ResourceWarning (an error under our pytest).
        # A fixed server_hostname spares aiosmtpd a socket.getfqdn() DNS round trip.
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            server_hostname="relay.commsproxy.test",
            ready_timeout=10.0,
        )
        try:
            controller.start()
        except BaseException:
            if not controller.loop.is_running():  # e.g. the port was taken
                controller.loop.close()
            raise
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def captured(self) -> list[CapturedMessage]:
        """Every message received so far, oldest first."""
        result = []
        # The .json sidecar is renamed into place last, so its presence means "complete".
        for meta_path in sorted(self.capture_dir.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            result.append(
                CapturedMessage(
                    mail_from=meta["mail_from"],
                    rcpt_tos=tuple(meta["rcpt_tos"]),
                    content=meta_path.with_suffix(".eml").read_bytes(),
                )
            )
        return result

    def _store(self, message: CapturedMessage) -> str:
        name = f"{next(self._seq):06d}"
        eml = self.capture_dir / f"{name}.eml"
        meta = {"mail_from": message.mail_from, "rcpt_tos": list(message.rcpt_tos)}
        _write_atomically(eml, message.content)
        _write_atomically(eml.with_suffix(".json"), json.dumps(meta).encode())
        return name

    def _deliver_lmtp(self, message: CapturedMessage, recipients: list[str]) -> None:
        # One transaction per recipient: LMTP answers DATA once per recipient, and
        # smtplib.LMTP reads only one reply, which would desynchronise the session.
        for rcpt in recipients:
            with smtplib.LMTP(self.lmtp_host, self.lmtp_port, timeout=_LMTP_TIMEOUT) as lmtp:
                lmtp.sendmail(message.mail_from, [rcpt], message.content)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
