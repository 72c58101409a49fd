"""Messages in flight on the SMTP side: bounded in memory, spooled to disk, capped in total.

A message is received into a :class:`Spool`: the first ``memory`` bytes in memory, the rest in
an anonymous temporary file (created with mode 0600 and unlinked at once, so nothing is left
behind even after a crash). Every byte a spool holds is first taken from the listener's
:class:`InFlight` budget, which is given back when the spool closes; a message that would go
over the cap is refused (``452 4.3.1``) while other sessions go on.

Reading back is in blocks, so the upstream is fed without the message ever being whole in
memory (:func:`dot_stuffed`).
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

__all__ = ["BLOCK", "InFlight", "Spool", "dot_stuffed"]

BLOCK = 64 << 10  # bytes read or written at a time
MEMORY = 256 << 10  # bytes of a message kept in memory before it goes to disk


class InFlight:
    """The bytes of all messages being received or relayed at once, under one cap."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.used = 0
        self.peak = 0

    def take(self, size: int) -> bool:
        """Reserve ``size`` bytes; False (nothing reserved) when that would pass the cap."""
        if self.used + size > self.cap:
            return False
        self.used += size
        self.peak = max(self.peak, self.used)
        return True

    def give_back(self, size: int) -> None:
        self.used -= size


class Spool:
    """One message's bytes: in memory up to ``memory``, then in an owner-only temporary file."""

    def __init__(
        self, budget: InFlight, directory: Path | None = None, memory: int = MEMORY
    ) -> None:
        self._budget = budget
        self._directory = directory
        self._memory = memory
        self._buffer = io.BytesIO()
        self._file: IO[bytes] | None = None
        self.size = 0
        self.refused = False  # the cap refused a write; the spool holds only what came before

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> bool:
        """Add ``data``; False when the in-flight cap refuses it (then nothing more is kept)."""
        if self.refused or not self._budget.take(len(data)):
            self.refused = True
            return False
        self.size += len(data)
        if self._file is None and self._buffer.tell() + len(data) > self._memory:
            # mkstemp-style: mode 0600, and unlinked at once on POSIX.
            self._file = tempfile.TemporaryFile(dir=self._directory)  # noqa: SIM115 (kept open)
            self._file.write(self._buffer.getbuffer())
            self._buffer = io.BytesIO()
        (self._file or self._buffer).write(data)
        return True

    def blocks(self, size: int = BLOCK) -> Iterator[bytes]:
        """The content from the start, ``size`` bytes at a time."""
        source: IO[bytes] = self._file if self._file is not None else self._buffer
        source.flush()
        source.seek(0)
        while block := source.read(size):
            yield block

    def read_all(self) -> bytes:
        return b"".join(self.blocks())

    def close(self) -> None:
        """Drop the content (the file is removed) and give its bytes back to the budget."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._buffer = io.BytesIO()
        self._budget.give_back(self.size)
        self.size = 0

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dot_stuffed(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks with a dot doubled at the start of each line (RFC 5321 4.5.2), as sent.

    Only a dot after CRLF (or at the very start) is doubled, the lines the receiving side
    un-stuffed, so the upstream gets the bytes the client sent.
    """
    tail = b"\r\n"  # the start of the message is the start of a line
    for block in blocks:
        if not block:
            continue
        # The last two bytes of the block before let a CRLF split across blocks be seen.
        yield (tail + block).replace(b"\r\n.", b"\r\n..")[len(tail) :]
        tail = (tail + block)[-2:]
