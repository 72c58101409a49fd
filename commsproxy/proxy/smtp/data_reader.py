"""Reading a message after DATA into a spool, line by line, with every limit applied as it comes.

aiosmtpd's own DATA reader keeps the whole message in a list of lines in memory; this one writes
each line (un-stuffed, RFC 5321 4.5.2) to a :class:`~.spool.Spool`, so a big message goes to disk
as it arrives. As RFC 5321 4.2.5 implies, a refusal is answered only after the end of the data;
what comes after a refusal is read and dropped.
"""

from __future__ import annotations

import asyncio
import enum

from .spool import Spool

__all__ = ["DataOutcome", "read_data"]


class DataOutcome(enum.Enum):
    COMPLETE = "complete"
    LINE_TOO_LONG = "line too long"
    TOO_BIG = "too big"
    OVER_CAP = "over the in-flight cap"

    @property
    def reply(self) -> str:
        """The client's reply for a message that was not taken."""
        return _REPLIES[self]


_REPLIES = {
    DataOutcome.COMPLETE: "250 2.0.0 OK",
    DataOutcome.LINE_TOO_LONG: "500 5.5.6 commsproxy: a line of the message is longer than "
    "1000 bytes (RFC 5321 4.5.3.1.6)",
    DataOutcome.TOO_BIG: "552 5.3.4 commsproxy: the message is larger than max_message_size",
    DataOutcome.OVER_CAP: "452 4.3.1 commsproxy: too much mail in flight at once; try again "
    "in a moment",
}


async def read_data(
    reader: asyncio.StreamReader, spool: Spool, *, size_limit: int | None, line_limit: int
) -> DataOutcome:
    """Read up to the lone ``.`` line into ``spool``; how it ended.

    ``reader`` must have a limit of about ``line_limit``, so that no line is buffered whole
    before it is known to be too long. Raises what the reader raises when the link goes.
    """
    outcome = DataOutcome.COMPLETE
    size = 0
    partial = False  # the line being read passed the reader's limit; its rest follows
    while True:
        try:
            line = await asyncio.StreamReader.readuntil(reader, b"\r\n")
        except asyncio.LimitOverrunError as err:
            # The reader's own readuntil (not an override refusing long command lines).
            await reader.readexactly(err.consumed)
            partial = True
            if outcome is DataOutcome.COMPLETE:
                outcome = DataOutcome.LINE_TOO_LONG
            continue
        if partial:  # the end of an over-long line
            partial = False
            continue
        if line == b".\r\n":
            return outcome
        size += len(line)
        if outcome is not DataOutcome.COMPLETE:
            continue
        if len(line) > line_limit:
            outcome = DataOutcome.LINE_TOO_LONG
        elif size_limit is not None and size > size_limit:
            outcome = DataOutcome.TOO_BIG
        elif not spool.write(_crlf_only(line[1:] if line.startswith(b".") else line)):
            outcome = DataOutcome.OVER_CAP


def _crlf_only(line: bytes) -> bytes:
    """``line`` (ending in its CRLF) with each bare CR or LF in it made a CRLF.

    A line read up to its first CRLF holds no CRLF before its end, so every CR or LF before
    that is bare. Relayed as they came, a bare ``\n.\n`` could end DATA at an upstream that
    takes a bare LF for a line end, and what follows would run there as commands (SMTP
    smuggling); as CRLF, the dot-stuffing towards the upstream doubles such a dot.
    """
    body = line[:-2]
    if b"\r" not in body and b"\n" not in body:
        return line
    return body.replace(b"\r", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
