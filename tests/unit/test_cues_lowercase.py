"""The cue patterns match lowercased text without IGNORECASE: the same cues as matching the
text as written with IGNORECASE, on the test phrases and on every SpamAssassin message."""

from __future__ import annotations

import re

import pytest

from commsproxy.classifier import cues
from commsproxy.classifier.quotes import own_text
from tests.spamassassin import spamassassin_mail

PATTERNS = (cues._URGENT_WORDS, cues._DEADLINE, cues._CALL_REQUEST)


def _as_written(text: str) -> list[str | None]:
    """What each pattern finds with IGNORECASE in the text as written, lowercased after."""
    found = [re.compile(p.pattern, re.IGNORECASE).search(text) for p in PATTERNS]
    return [m.group(0).lower() if m else None for m in found]


def _lowercased(text: str) -> list[str | None]:
    found = [p.search(text.lower()) for p in PATTERNS]
    return [m.group(0) if m else None for m in found]


@pytest.mark.parametrize(
    "text",
    [
        "URGENT: the Server Is Down",
        "Bitte um Rückruf, das System funktioniert nicht",
        "Le Réseau ne fonctionne plus, RAPPELEZ-MOI",
        "Kunt U mij vandaag nog TERUGBELLEN? De Kassa ligt plat",
        "Needed BY 5 PM today please; Deadline Today",
        "Nothing here at all, just a Note",
    ],
)
def test_phrases(text: str) -> None:
    assert _lowercased(text) == _as_written(text)


def test_every_spamassassin_message() -> None:
    found = 0
    for name, mail in spamassassin_mail():
        text = f"{mail.subject}\n{own_text(mail.body)[: cues.CUE_BODY_CHARS]}"
        assert _lowercased(text) == _as_written(text), name
        found += any(_as_written(text))
    assert found > 100
