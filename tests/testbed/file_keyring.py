"""A keyring backend that keeps its secrets in one JSON file named by COMMSPROXY_TEST_KEYRING.

keyring has no file backend of its own (that is the keyrings.alt package), and a test must never
touch the keyring of the user running it. A proxy process started with
``PYTHON_KEYRING_BACKEND=tests.testbed.file_keyring.FileKeyring`` and the variable pointing into
the test's temp dir uses this one, and so does the test (``FileKeyring()``), so both see the same
refresh token as they would through Secret Service.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

__all__ = ["ENV", "FileKeyring"]

ENV = "COMMSPROXY_TEST_KEYRING"


class FileKeyring(KeyringBackend):
    priority = 1

    def __init__(self, path: Path | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.path = path or Path(os.environ[ENV])

    def _load(self) -> dict[str, str]:
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return {}

    def _key(self, service: str, username: str) -> str:
        return f"{service}\0{username}"

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(self._key(service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        items = self._load()
        items[self._key(service, username)] = password
        self.path.write_text(json.dumps(items), encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        items = self._load()
        if items.pop(self._key(service, username), None) is None:
            raise PasswordDeleteError("not found")
        self.path.write_text(json.dumps(items), encoding="utf-8")
