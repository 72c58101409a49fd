"""The scoring form compiles a model's token pattern as a faster equivalent: the same tokens
on generated text (any characters, word boundaries of every kind) and on real mail."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.pipeline import ANY_WORD_PATTERN, WORD_PATTERN
from commsproxy.classifier.scoring_form import FASTER_PATTERNS, Words

CORPUS = (
    Path(__file__).resolve().parents[3] / "shared/data/spamassassin/spamassassin-ham-spam.tar.gz"
)
PAIRS = [(re.compile(slow), re.compile(fast)) for slow, fast in FASTER_PATTERNS.items()]


def test_the_patterns_models_are_trained_with() -> None:
    assert set(FASTER_PATTERNS) == {WORD_PATTERN, ANY_WORD_PATTERN}


def test_words_compile_the_equivalent_and_keep_the_models_pattern() -> None:
    words = Words("text_of", WORD_PATTERN, 16, True, False, False, None, None)
    assert words.pattern == WORD_PATTERN  # what the model says, unchanged
    assert words.analyze("Don't re-read 2nd_try x élan Über42 a_b") == [
        "don't",
        "re-read",
        "élan",
        "über42",
        "a_b",
    ]  # fmt: skip (no "nd_try": "2nd" has no word start before its "n")


_TEXT = st.text(
    alphabet=st.sampled_from(
        [*"ab_-'0 9\n.,é\u00dfΣ\u0663\u2160\u212a\u0301\u00a0\t", "\U0001f600", "ǅ"]
    ),
    max_size=60,
) | st.text(max_size=60)


@settings(max_examples=1000, deadline=None)
@given(_TEXT)
def test_same_tokens_on_generated_text(text: str) -> None:
    for slow, fast in PAIRS:
        assert fast.findall(text) == slow.findall(text)
        assert fast.findall(text.lower()) == slow.findall(text.lower())


def test_same_tokens_on_every_spamassassin_message() -> None:
    if not CORPUS.exists():
        pytest.skip(f"no SpamAssassin corpus at {CORPUS}")
    read = 0
    with tarfile.open(CORPUS) as tar:
        for member in tar:
            handle = tar.extractfile(member) if member.isfile() else None
            if handle is None:
                continue
            mail = parse_mail(handle.read()[:65536])
            text = f"{mail.subject}\n{mail.body}".lower()
            for slow, fast in PAIRS:
                assert fast.findall(text) == slow.findall(text), member.name
            read += 1
    assert read > 1000
