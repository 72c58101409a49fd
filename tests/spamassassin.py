"""Every message of the SpamAssassin corpus in ../shared, for tests that hold a fast path to
the full one on real mail; such a test is skipped on a clone without ../shared."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from commsproxy.classifier.mail import Mail, parse_mail

CORPUS = (
    Path(__file__).resolve().parents[2] / "shared/data/spamassassin/spamassassin-ham-spam.tar.gz"
)


def spamassassin_mail() -> Iterator[tuple[str, Mail]]:
    """Each message's name in the archive and the message (its first 64 KiB) as parsed."""
    if not CORPUS.exists():
        pytest.skip(f"no SpamAssassin corpus at {CORPUS}")
    with tarfile.open(CORPUS) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is not None:
                yield member.name, parse_mail(handle.read()[:65536])
