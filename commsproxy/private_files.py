"""Files only their owner may read: the config (it may name a password command, client secrets,
the accounts) and the folder it lives in.

A file is written to a temporary name created with mode 0600 and then renamed over the old one,
so it is never readable by others, not even for a moment, and an old file with a wider mode is
replaced rather than truncated (truncating keeps the old mode). A folder commsproxy creates, and
commsproxy's own config folder, are made 0700; a folder the user chose and that exists already
keeps its mode (it may be their home directory).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import platformdirs

from .config import APP

__all__ = ["private_folder", "write_private_bytes", "write_private_text"]


def private_folder(folder: Path) -> None:
    """Create ``folder`` (and its parents) if needed; 0700 when created or commsproxy's own."""
    own = folder.absolute() == platformdirs.user_config_path(APP).absolute()
    created = not folder.exists()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if created or own:
        with contextlib.suppress(OSError):  # the mode asked of mkdir is masked by the umask
            os.chmod(folder, 0o700)


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` with mode 0600, whole or not at all, in a private folder."""
    private_folder(path.parent)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_private_text(path: Path, text: str) -> None:
    write_private_bytes(path, text.encode("utf-8"))
