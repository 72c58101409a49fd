"""The cue patterns are searched only in text holding one of their trigger words (or text
that is not ASCII): the same cues as searching every text, on a phrase for each alternative,
on generated text and on every SpamAssassin message."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier import cues
from commsproxy.classifier.quotes import own_text
from tests.spamassassin import spamassassin_mail

SEARCHES = (
    (cues._URGENT_WORDS, cues._URGENT_TRIGGERS),
    (cues._DEADLINE, cues._DEADLINE_TRIGGERS),
    (cues._CALL_REQUEST, cues._CALL_TRIGGERS),
)

# One phrase for each alternative of each pattern (ASCII spellings: the accented ones are
# searched in full).
URGENT = (
    "urgent", "urgently", "urgente", "urgentes", "asap", "a.s.a.p", "emergency",
    "as soon as possible", "right away", "immediately", "time-sensitive", "time sensitive",
    "outage", "dringend", "spoed", "spoedeisend", "met spoed", "zo snel mogelijk", "z.s.m",
    "zsm", "onmiddellijk", "ligt plat", "liggen plat", "storing", "urgence",
    "des que possible", "au plus vite", "immediatement", "en panne", "eilig", "sofort",
    "so schnell wie moglich", "schnellstmoglich", "ausgefallen", "storung", "notfall",
    "the server is down", "email went offline", "e-mail not working", "site has gone down",
    "website stopped working", "app doesn't work", "shop does not work", "kassa werkt niet",
    "lijn werken niet", "reseau ne fonctionne plus", "caisse ne marche pas",
    "drucker funktioniert nicht",
)  # fmt: skip
DEADLINE = (
    "by today", "before the end of the business day", "until tonight", "no later than 5 pm",
    "by close of business", "before 10:30am", "due today", "deadline tonight",
    "needed by this morning", "need it today", "need an answer this afternoon",
    "today, please", "this afternoon please", "this morning please", "end of the day today",
    "end of day today", "vandaag nog", "nog vandaag", "uiterlijk om", "uiterlijk vanmiddag",
    "voor vanavond", "tegen 5 uur", "aujourd'hui meme", "dans la journee", "avant ce soir",
    "d'ici ce soir", "avant midi", "d'ici 17h", "noch heute", "heute noch",
    "bis heute abend", "bis mittag", "bis heute", "vor 17 uhr", "bis 9.30 uhr",
)  # fmt: skip
CALL = (
    "call me asap", "phone me back today", "ring me now", "give me a call asap",
    "give me a ring today", "call me back", "could you please phone me", "can you call me",
    "would you ring me", "bel me", "bel mij", "belt u me", "kun je me vandaag nog terugbellen",
    "wilt u mij bellen", "graag even terugbellen", "graag bellen", "bellen a.u.b",
    "terugbellen aub", "rappelez-moi", "appelle moi", "merci de me rappeler",
    "merci de me contacter par telephone", "pouvez-vous me rappeler", "peux-tu m'appeler",
    "pourriez-vous me rappeler", "pourrais-tu m'appeler", "ruf mich an",
    "rufen sie mich bitte zuruck", "bitte um ruckruf", "bitte ruckruf", "bitte anrufen",
    "konnen sie mich zuruckrufen", "kannst du mich heute anrufen",
)  # fmt: skip


def _fast(text: str) -> list[tuple[int, int, str] | None]:
    words = cues.cue_words(text)
    found = [cues._search(pattern, triggers, words, text) for pattern, triggers in SEARCHES]
    return [(m.start(), m.end(), m.group(0)) if m else None for m in found]


def _full(text: str) -> list[tuple[int, int, str] | None]:
    found = [pattern.search(text) for pattern, _ in SEARCHES]
    return [(m.start(), m.end(), m.group(0)) if m else None for m in found]


@pytest.mark.parametrize(
    ("index", "phrase"),
    [(0, p) for p in URGENT] + [(1, p) for p in DEADLINE] + [(2, p) for p in CALL],
)
def test_each_alternative_has_a_trigger_word(index: int, phrase: str) -> None:
    pattern, triggers = SEARCHES[index]
    assert pattern.search(phrase) is not None, "the phrase no longer tests its alternative"
    words = cues.cue_words(phrase)
    assert words is not None
    assert not triggers.isdisjoint(words)
    for text in (phrase, f"re: note\nhi,\n({phrase}!) thanks_\n-- x", f"{phrase}s and more"):
        assert _fast(text) == _full(text)


def test_ascii_words_as_the_patterns_divide_them() -> None:
    assert cues.cue_words("d'ici a.s.a.p, e-mail_x 5pm") == [
        b"d",
        b"ici",
        b"a",
        b"s",
        b"a",
        b"p",
        b"e",
        b"mail_x",
        b"5pm",
    ]
    assert cues.cue_words("dès que possible") is None  # searched in full


def test_text_without_a_trigger_skips_the_searches() -> None:
    text = "lunch 4\nshall we have lunch some day next week? option 4, or the one after.\n"
    words = cues.cue_words(text)
    assert words is not None
    assert all(triggers.isdisjoint(words) for _, triggers in SEARCHES)
    assert _full(text) == [None, None, None]


_PIECES = st.sampled_from(
    [*URGENT, *DEADLINE, *CALL, "the", "we", "day", "d", "e", "s", "p", "z", "m", "me", "it",
     "urgentx", "xurgent", "calls", "recall", "byway", "5", "17", "10:30", "pm", "h", "uhr",
     "possibles", "downtown", "works", "ici", "moi", "sie", "du", "a", "u", "b", "plat",
     "ça", "réseau", "dès", "k\u212a"]
)  # fmt: skip
_GLUE = st.sampled_from([" ", "  ", ", ", ". ", "-", "'", "\n", "(", ")", "_", "!", ":", ""])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_PIECES, _GLUE), max_size=12))
def test_generated_text(parts: list[tuple[str, str]]) -> None:
    text = "".join(piece + glue for piece, glue in parts).lower()
    assert _fast(text) == _full(text)


def test_every_spamassassin_message() -> None:
    searched = 0
    for name, mail in spamassassin_mail():
        text = f"{mail.subject}\n{own_text(mail.body)[: cues.CUE_BODY_CHARS]}".lower()
        assert _fast(text) == _full(text), name
        searched += 1
    assert searched > 1000


def test_non_word_table_keeps_exactly_the_ascii_word_characters() -> None:
    for code in range(128):
        kept = cues._NON_WORD[code] != ord(" ")  # a word character stays itself
        assert kept == bool(re.fullmatch(r"\w", chr(code))), chr(code)
