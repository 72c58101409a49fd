"""Fakes for the OAuth2 unit tests: a scripted token endpoint, a clock, an in-memory keyring."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from keyring.backend import KeyringBackend

from commsproxy.oauth.http import HttpRequest, HttpResponse


def reply(status: int = 200, headers: dict[str, str] | None = None, **data: Any) -> HttpResponse:
    return HttpResponse(status, json.dumps(data).encode(), headers or {})


@dataclass
class FakeTransport:
    """Answers each request from ``answer(request)``; records every request it got."""

    answer: Callable[[HttpRequest], HttpResponse]
    requests: list[HttpRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with self.lock:
            self.requests.append(request)
        return self.answer(request)


def issuing() -> FakeTransport:
    """A token endpoint that hands out AT-1, AT-2, ... one per request, each for an hour."""
    count = 0

    def answer(request: HttpRequest) -> HttpResponse:
        nonlocal count
        count += 1
        return reply(access_token=f"AT-{count}", expires_in=3600)

    return FakeTransport(answer)


@dataclass
class FakeClock:
    now: float = 1_000_000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a dict (a real backend, as keyring sees it)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.items.pop((service, username), None)
