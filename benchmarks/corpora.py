"""The public corpora the accuracy benchmarks read: where they are and how they are unpacked.

The tarballs stay in ../shared/data (each with its PROVENANCE.md); a benchmark unpacks what it
needs into a temporary directory and never copies them into the project.
"""

from __future__ import annotations

import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from commsproxy.classifier.dataset import extract_archive

Say = Callable[[str], None]

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The three corpora: tarball (relative to --data) and the directory it unpacks to.
CORPORA = {
    "foldering": ("enron-foldering/enron-foldering-5users.tar.gz", "enron-foldering"),
    "mailboxes": ("enron-full-mailboxes/enron-full-4users.tar.gz", "maildir"),
    "spamassassin": ("spamassassin/spamassassin-ham-spam.tar.gz", "spamassassin"),
}


class DataMissing(Exception):
    """A corpus is not where --data says; the message says which and what to do."""


def unpack(data: Path, into: Path, names: Sequence[str], say: Say) -> dict[str, Path]:
    """Extract the named corpora's tarballs into ``into``; the root directory of each."""
    missing = [str(data / CORPORA[name][0]) for name in names]
    missing = [path for path in missing if not Path(path).is_file()]
    if missing:
        raise DataMissing(
            "missing: " + ", ".join(missing) + f"\nThe benchmark reads the public corpora in "
            f"{data} (see PROVENANCE.md in each directory there); the tests do not need them. "
            "Put them there or pass --data DIR."
        )
    roots: dict[str, Path] = {}
    for name in names:
        tarball, top = CORPORA[name]
        started = time.perf_counter()
        target = into / name
        with tarfile.open(data / tarball) as tar:
            extract_archive(tar, target)
        root = target / top
        if not root.is_dir():
            raise DataMissing(f"{data / tarball} does not hold a directory {top}/")
        roots[name] = root
        say(f"unpacked {tarball} ({time.perf_counter() - started:.1f} s)")
    return roots


def print_now(text: str) -> None:
    print(text, flush=True)
