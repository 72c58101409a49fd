"""Owner-only files under the user's data dir: where the encrypted token and password hash live."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import platformdirs

__all__ = ["default_secrets_dir", "file_for", "read_json", "write_private_json"]


def default_secrets_dir() -> Path:
    return platformdirs.user_data_path("commsproxy") / "oauth"


def file_for(directory: Path, account: str, suffix: str) -> Path:
    """``directory/ACCOUNT.suffix``, the account quoted so no name can leave the directory."""
    return directory / f"{quote(account, safe='@+-_')}.{suffix}"


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` readable by the owner only (0600 in a 0700 directory), atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # a directory the user made by hand: tighten it
        os.chmod(path.parent, 0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None
