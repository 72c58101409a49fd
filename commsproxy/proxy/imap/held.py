"""Upstream responses held back while the gate decides what a client may see (no I/O here)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["HeldResponses"]


class HeldResponses:
    """Whole responses (lists of chunks) held in order, bounded: past ``limit`` bytes the
    hold fails open and hands everything back, because a pause must never grow unbounded."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.messages: list[list[bytes]] | None = None  # None: not paused
        self.size = 0

    @property
    def paused(self) -> bool:
        return self.messages is not None

    def pause(self) -> None:
        if self.messages is None:
            self.messages, self.size = [], 0

    def add(self, data: bytes, first: bool, out: list[bytes]) -> bool:
        """Hold ``data`` (``first``: it starts a response); False when the bound was passed
        and everything held went to ``out`` instead."""
        messages = self.messages
        assert messages is not None
        if first or not messages:
            messages.append([data])
        else:
            messages[-1].append(data)
        self.size += len(data)
        if self.size <= self.limit:
            return True
        out.extend(chunk for message in messages for chunk in message)
        self.messages = None
        return False

    def release(
        self, rewrite: Callable[[list[list[bytes]]], list[bytes]] | None, keep_paused: bool
    ) -> list[bytes]:
        """Everything held, in order (through ``rewrite`` if given); holding goes on (empty)
        with ``keep_paused``."""
        held, self.messages, self.size = self.messages, ([] if keep_paused else None), 0
        if not held:
            return []
        return rewrite(held) if rewrite is not None else [c for m in held for c in m]
