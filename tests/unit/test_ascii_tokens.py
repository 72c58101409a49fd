"""The scoring form reads ASCII text with its token pattern's ASCII twin: the same tokens as
the model's own pattern on generated ASCII text and on every SpamAssassin message."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier.pipeline import ANY_WORD_PATTERN, WORD_PATTERN
from commsproxy.classifier.scoring_form import ASCII_TWINS, Words
from tests.spamassassin import spamassassin_mail

PAIRS = [(re.compile(model), re.compile(twin)) for model, twin in ASCII_TWINS.items()]


def test_the_patterns_models_are_trained_with() -> None:
    assert set(ASCII_TWINS) == {WORD_PATTERN, ANY_WORD_PATTERN}


@pytest.mark.parametrize("lowercase", [True, False])
def test_words_read_ascii_and_other_text_as_the_model(lowercase: bool) -> None:
    words = Words("text_of", WORD_PATTERN, 16, lowercase, False, False, None, None)
    model = re.compile(WORD_PATTERN)
    for text in ("Don't re-read 2nd_try x a_b -x- it's", "Élan Über42 naïve \u212aelvin"):
        expected = model.findall(text.lower() if lowercase else text)
        assert words.analyze(text) == expected
        assert expected


_ASCII = st.text(alphabet=st.characters(max_codepoint=127), max_size=80) | st.text(
    alphabet=st.sampled_from([*"aZ_-'09 \n.,"]), max_size=40
)


@settings(max_examples=1000, deadline=None)
@given(_ASCII)
def test_same_tokens_on_generated_ascii_text(text: str) -> None:
    for model, twin in PAIRS:
        assert twin.findall(text) == model.findall(text)


def test_same_tokens_on_every_spamassassin_message() -> None:
    read = 0
    for name, mail in spamassassin_mail():
        for text in (f"{mail.subject}\n{mail.body}".lower(), mail.body):
            if text.isascii():
                for model, twin in PAIRS:
                    assert twin.findall(text) == model.findall(text), name
                read += 1
    assert read > 1000
