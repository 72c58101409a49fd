"""What the OAuth2 tests on the bed share: short token lives, waiting, and the check that no
token or password was written where it must never be (the -v log, the state dir, the config).
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from commsproxy.oauth import TokenSet

__all__ = [
    "JWT_LIKE",
    "LIFETIME",
    "TOKEN_LIKE",
    "RawImap",
    "assert_no_secret",
    "let_the_token_expire",
    "secrets_of",
    "wait_for",
]

LIFETIME = 2  # seconds an access token lives on the bed, for the tests that want expiries
# A run of URL-safe base64 this long is a token (JWTs and the bed's refresh tokens both are);
# nothing commsproxy logs on purpose looks like that.
TOKEN_LIKE = re.compile(r"[A-Za-z0-9_\-]{40,}")
# Every JWT starts with the base64url of '{"': "eyJ".
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_\-]{8,}")


def let_the_token_expire() -> None:
    time.sleep(LIFETIME + 0.3)  # Dovecot counts whole seconds


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def secrets_of(issued: Iterable[TokenSet], *passwords: str) -> list[str]:
    """Every token value in ``issued`` and the ``passwords`` (local and identity provider)."""
    found = list(passwords)
    for tokens in issued:
        found.append(tokens.access_token.reveal())
        if tokens.refresh_token is not None:
            found.append(tokens.refresh_token.reveal())
    return found


def assert_no_secret(
    log: str, places: Iterable[Path], known: Iterable[str], *, encrypted: Iterable[Path] = ()
) -> None:
    """No known secret and nothing token-like in ``log``; no known secret and no JWT in any
    file under ``places`` (files or directories). Under ``encrypted`` (the token file's dir)
    only the known secrets are looked for: random ciphertext may hold "eyJ" by chance."""
    known = [s for s in known if s]
    for secret in known:
        assert secret not in log
    for pattern in (TOKEN_LIKE, JWT_LIKE):
        assert pattern.search(log) is None, pattern.search(log)
    jwt = re.compile(JWT_LIKE.pattern.encode())
    for place, look_for_jwt in [*((p, True) for p in places), *((p, False) for p in encrypted)]:
        for path in _files(place):
            content = path.read_bytes()
            assert not any(s.encode() in content for s in known), path
            if look_for_jwt:
                assert jwt.search(content) is None, (path, jwt.search(content))


def _files(place: Path) -> list[Path]:
    if place.is_file():
        return [place]
    return sorted(path for path in place.rglob("*") if path.is_file())


class RawImap:
    """A bare IMAP connection for what imaplib cannot do by itself (IDLE)."""

    def __init__(self, port: int, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        assert self.line().startswith(b"* OK")

    def __enter__(self) -> RawImap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.file.close()
        self.sock.close()

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self) -> bytes:
        data = self.file.readline()
        assert data, "the proxy closed the connection"
        return data

    def line_matching(self, pattern: bytes) -> bytes:
        while not re.search(pattern, line := self.line()):
            pass
        return line

    def command(self, line: str) -> bytes:
        tag = line.split(" ", 1)[0].encode()
        self.send(line)
        out = b""
        while not (got := self.line()).startswith(tag + b" "):
            out += got
        assert got.startswith(tag + b" OK"), got
        return out + got
