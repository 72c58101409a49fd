"""When a queued request that failed may be tried again, and whether its failure is news.

Requests from other processes (``release --now``, ``deliver``) stay queued until they are
carried out; a failing one is tried again with waits doubling up to a longest wait, and its
failure is logged once per reason rather than once per try.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["RequestRetries"]


class RequestRetries:
    def __init__(self, clock: Callable[[], float], longest: Callable[[], float]) -> None:
        self._clock = clock
        self._longest = longest  # read at each failure, so tests can shorten it
        self._retry_at: dict[int, float] = {}
        self._tries: dict[int, int] = {}
        self._said: dict[int, str] = {}

    def due(self, request: int) -> bool:
        return self._retry_at.get(request, 0.0) <= self._clock()

    def done(self, request: int) -> None:
        for record in (self._retry_at, self._tries, self._said):
            record.pop(request, None)

    def failed(self, request: int, error: str) -> tuple[float, bool]:
        """The wait before the next try, and whether ``error`` differs from the last one."""
        tries = self._tries[request] = self._tries.get(request, 0) + 1
        wait = min(2.0 ** (tries - 1), self._longest())
        self._retry_at[request] = self._clock() + wait
        news = self._said.get(request) != error
        self._said[request] = error
        return wait, news
