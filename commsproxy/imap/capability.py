"""Rewriting the capabilities the upstream advertises, as the client will see them.

The relay is transparent except here. ``COMPRESS=`` is dropped because a compressed stream would
hide every later command and response from the proxy. ``STARTTLS`` belongs to each hop: the
upstream's offer is about the proxy's own upstream link, so it is replaced by the proxy's offer on
the client link (made only when a local certificate exists and that link is still plain).
"""

from __future__ import annotations

import re

__all__ = ["capabilities_in", "rewrite_capabilities", "strip_capability_code"]

# "* CAPABILITY ..." as untagged data, or a "[CAPABILITY ...]" response code in any status line.
_DATA = re.compile(rb"^(\* CAPABILITY )([^\r\n]*)", re.IGNORECASE)
_CODE = re.compile(rb"(\[CAPABILITY )([^\]\r\n]*)(\])", re.IGNORECASE)


def _filter(caps: bytes, offer_starttls: bool) -> bytes:
    kept = [
        cap
        for cap in caps.split()
        if not cap.upper().startswith(b"COMPRESS=") and cap.upper() != b"STARTTLS"
    ]
    if offer_starttls:
        kept.append(b"STARTTLS")
    return b" ".join(kept)


def rewrite_capabilities(line: bytes, *, offer_starttls: bool) -> bytes:
    """``line`` with its capability list rewritten; other lines come back unchanged."""
    match = _DATA.match(line)
    if match is not None:
        return match.group(1) + _filter(match.group(2), offer_starttls) + line[match.end() :]
    match = _CODE.search(line)
    if match is not None:
        caps = _filter(match.group(2), offer_starttls)
        return line[: match.start()] + match.group(1) + caps + match.group(3) + line[match.end() :]
    return line


def strip_capability_code(line: bytes) -> bytes:
    """``line`` without its ``[CAPABILITY ...]`` code (for a greeting made stale by STARTTLS)."""
    match = _CODE.search(line)
    if match is None:
        return line
    return line[: match.start()] + line[match.end() :].lstrip(b" ")


def capabilities_in(line: bytes) -> frozenset[str] | None:
    """The capabilities a ``* CAPABILITY`` line or a ``[CAPABILITY ...]`` code lists, upper
    case; None when ``line`` lists none (ask with CAPABILITY)."""
    match = _DATA.match(line) or _CODE.search(line)
    if match is None:
        return None
    return frozenset(cap.upper() for cap in match.group(2).decode("ascii", "replace").split())
