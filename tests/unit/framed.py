"""Server transcripts cut into whole messages, the form the response readers take."""

from __future__ import annotations

from commsproxy.imap.framer import Framer, MessageEnd


def framed(wire: bytes) -> list[bytes]:
    """Each response of ``wire`` whole, literals inline, as the client's framer hands them on."""
    framer = Framer(max_head=1 << 24)
    framer.receive_data(wire)
    return [event.head for event in framer.events() if isinstance(event, MessageEnd)]
