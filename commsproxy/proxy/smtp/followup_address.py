"""The follow-up address: a recipient saying when to look whether a sent message was answered.

A bcc to ``2d@followup.invalid`` (``4h@``, ``monday@``, ``tomorrow@``, ``"fri 14:00"@``,
``never@``) tells triage when to bring the message back if nobody answered. The ``.invalid`` TLD
(RFC 2606) is never delivered anywhere, and the relay never hands the address on: it is
answered here at RCPT and kept out of the envelope. The local part is read with the same
language as every other "later" (``timespec.py``); ``-`` and ``_`` stand for spaces, since a
space needs quotes in an address.
"""

from __future__ import annotations

from dataclasses import dataclass

from ...timespec import TimeSpecError, parse_when

__all__ = [
    "FOLLOWUP_DOMAIN",
    "NEVER",
    "FollowupAddress",
    "is_followup_address",
    "read_followup_address",
    "refusal",
]

FOLLOWUP_DOMAIN = "followup.invalid"
NEVER = ("never", "none")  # do not watch this message
_EXPECTED = "expected e.g. 2d@followup.invalid (2 working days), 4h@, monday@, tomorrow@ or never@"


@dataclass(frozen=True)
class FollowupAddress:
    """A recipient at the follow-up domain: ``local`` is its local part as ``parse_when`` reads
    it (``2d``, ``fri 14:00`` for ``fri-14:00``), or as given when ``error`` says what is wrong
    with it; ``error`` is None when it names a time (or never)."""

    local: str
    error: str | None = None


def _split(address: str) -> tuple[str, str]:
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    local, _, domain = text.rpartition("@")
    return local, domain


def is_followup_address(address: str) -> bool:
    """True for any address at the follow-up domain, valid or not."""
    local, domain = _split(address)
    return bool(local) and domain.lower().rstrip(".") == FOLLOWUP_DOMAIN


def read_followup_address(address: str) -> FollowupAddress | None:
    """None for an ordinary recipient; else the follow-up time it names, or what is wrong."""
    if not is_followup_address(address):
        return None
    local, _ = _split(address)
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    given = local.strip()
    text = " ".join(given.replace("_", " ").replace("-", " ").split()).lower()
    if text in NEVER:
        return FollowupAddress(text)
    try:
        parse_when(text)
    except TimeSpecError:
        return FollowupAddress(given, f"{given!r} is not a follow-up time; {_EXPECTED}")
    return FollowupAddress(text)


def refusal(found: FollowupAddress) -> str:
    """The RCPT reply for a follow-up address that names no time."""
    # 553: the mailbox name is not allowed (RFC 5321 4.2.3), 5.1.3: bad address syntax.
    error = " ".join((found.error or _EXPECTED).split())
    return f"553 5.1.3 commsproxy: {error}"
