"""A stored reason in plain words, for the page.

The digest's wording (the mapping from a decision's stored reason to a sentence a person
reads) is the one place that says what a reason means; the page uses it when it is there and
shows the stored reason as it is otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["plain_reason"]


def _find_wording() -> Callable[[str], str] | None:
    try:
        from ..triage import plain_reasons
    except ImportError:
        return None
    found = getattr(plain_reasons, "plain_reason", None)
    return found if callable(found) else None


_WORDING = _find_wording()


def plain_reason(reason: str) -> str:
    if _WORDING is None:
        return reason
    try:
        return str(_WORDING(reason))
    except Exception:  # a wording problem must not take the page down
        return reason
