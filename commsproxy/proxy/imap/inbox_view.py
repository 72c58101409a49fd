"""The no-flicker gate's bookkeeping: pure, no I/O, driven by the relay through gate.py.

A client with INBOX selected must never learn of a message that triage is about to hold. New
mail is always appended at the end of a mailbox, so what the client knows is a prefix of what the
upstream has announced to the session: ``known`` messages out of ``total``. When upstream
announces more (``* N EXISTS`` above ``known``) the relay pauses that session's responses while
triage catches up; the paused responses are then rewritten here:

- ``EXISTS`` lines go (the client gets one ``EXISTS`` for what stayed, computed at the end);
- ``EXPUNGE n`` of a message the client never learned of (``n > known``) goes, others stay;
- ``FETCH n`` of such a message goes; ``RECENT`` goes (it counted the held mail too);
- ``VANISHED`` (QRESYNC) loses the UIDs triage held;
- the tagged replies to the proxy's own commands go.

The ``EXISTS`` for the messages that stayed goes just before the first tagged reply, so a
client that polled with NOOP sees its new urgent mail in that NOOP's answer. A held SELECT's
answer (``announce``) always gets that ``EXISTS``, and loses an ``UNSEEN`` past what it shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ...imap.grammar import ParseError, ResponseKind, parse_response, tokenize

__all__ = ["InboxView", "Rewritten"]


@dataclass(frozen=True, slots=True)
class Rewritten:
    data: list[bytes]
    hidden: int  # messages the client never saw (held while paused)


@dataclass
class InboxView:
    """One session's INBOX: how many messages the client knows, how many upstream announced."""

    known: int | None = None  # None until the SELECT's EXISTS
    total: int | None = None
    # The held responses are a SELECT's answer: the client is told a count (its one EXISTS)
    # even when nothing new stays, and an UNSEEN past what it may know goes.
    announce: bool = False

    def wants_pause(self, exists: int) -> bool:
        """An unpaused ``* N EXISTS``: True if it announces mail the gate must check first."""
        if self.known is None:
            self.known = self.total = exists
            return False
        if exists > self.known:
            return True
        self.known = self.total = exists
        return False

    def forwarded_expunge(self, count: int = 1) -> None:
        """Expunges that reached the client while not paused."""
        if self.known is not None:
            self.known = max(0, self.known - count)
            self.total = self.known

    def rewrite(
        self,
        messages: Sequence[Sequence[bytes]],
        own_tags: frozenset[str],
        held_uids: frozenset[int] = frozenset(),
        limit: int | None = None,
    ) -> Rewritten:
        """The paused responses as the client should see them; updates ``known``/``total``.

        ``limit`` caps how many messages the client may know (those triage has decided on);
        the rest stay hidden, and the caller keeps the session paused until they are decided.
        """
        known = self.known or 0
        total = self.total if self.total is not None else known
        kept: list[Sequence[bytes]] = []
        insert_at: int | None = None
        known_there = known
        hidden_expunges = 0
        for message in messages:
            first = message[0]
            try:
                response = parse_response(first)
            except ParseError:
                kept.append(message)
                continue
            if response.kind is ResponseKind.TAGGED:
                if response.tag in own_tags:
                    continue
                if insert_at is None:
                    insert_at, known_there = len(kept), known
                kept.append(message)
                continue
            if response.kind is not ResponseKind.UNTAGGED:
                kept.append(message)
                continue
            name, number = response.name, response.number
            if name == "EXISTS" and number is not None:
                total = number
            elif name == "RECENT":
                continue
            elif self.announce and response.code == "UNSEEN":
                if (_code_number(first) or 0) <= known:
                    kept.append(message)
            elif name == "EXPUNGE" and number is not None:
                total -= 1
                if number <= known:
                    known -= 1
                    kept.append(message)
                else:
                    hidden_expunges += 1
            elif name == "FETCH" and number is not None:
                if number <= known:
                    kept.append(message)
            elif name == "VANISHED":
                line, gone, hidden = _vanished(first, held_uids)
                total -= gone + hidden
                known -= gone
                hidden_expunges += hidden
                if line is not None:
                    kept.append([line, *message[1:]])
            else:
                kept.append(message)
        shown = total if limit is None else min(total, limit)
        stayed = max(0, shown - known)
        out: list[bytes] = []
        if insert_at is None:
            insert_at, known_there = len(kept), known
        tell = stayed or self.announce
        for index, message in enumerate(kept):
            if index == insert_at and tell:
                out.append(b"* %d EXISTS\r\n" % (known_there + stayed))
            out.extend(message)
        if insert_at == len(kept) and tell:
            out.append(b"* %d EXISTS\r\n" % (known_there + stayed))
        self.known, self.total, self.announce = known + stayed, total, False
        return Rewritten(out, hidden_expunges)

    @property
    def hiding(self) -> bool:
        """Upstream has announced messages the client has not been shown yet."""
        return self.known is not None and self.total is not None and self.total > self.known


def _vanished(line: bytes, held: frozenset[int]) -> tuple[bytes | None, int, int]:
    """A ``VANISHED`` line without the held UIDs; (line or None, known gone, held gone)."""
    tokens = tokenize(line)
    if len(tokens) < 3 or isinstance(tokens[2], tuple):  # "(EARLIER)": not a live expunge
        return line, 0, 0
    uids = _expand(str(tokens[2]))
    visible = [uid for uid in uids if uid not in held]
    hidden = len(uids) - len(visible)
    if not visible:
        return None, 0, hidden
    if not hidden:
        return line, len(uids), 0
    return b"* VANISHED " + ",".join(map(str, visible)).encode() + b"\r\n", len(visible), hidden


def _code_number(line: bytes) -> int | None:
    """The number in a response code such as ``* OK [UNSEEN 7] ...``; None if there is none."""
    start = line.find(b"[")
    end = line.find(b"]", start)
    parts = line[start + 1 : end].split() if 0 <= start < end else []
    return int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None


def _expand(uid_set: str) -> list[int]:
    out: list[int] = []
    for part in uid_set.split(","):
        first, _, last = part.partition(":")
        if not first.isdigit() or (last and not last.isdigit()):
            continue
        low, high = sorted((int(first), int(last or first)))
        out.extend(range(low, min(high, low + 100_000) + 1))
    return out
