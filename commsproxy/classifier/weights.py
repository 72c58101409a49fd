"""How much each training message counts, so a few sources do not teach a class alone.

In a mailbox labelled by the user's replies, one long thread gives a class as many examples
as it has messages, most of them rebuilt from the quotes of the same answers (rebuild.py):
its words then stand for the class. ``thread_weights`` gives each thread (its normalised
subject) one example's worth per label, shared out among its messages. Across mailboxes,
``person_weights`` makes each person's mail count as much as another's, so the biggest
mailbox is not what the urgent class is. ``answered_weights`` puts the two together for the
mail labelled by the person's answers (urgent and normal); bulk counts once per message, as
spam does: a weekly newsletter is many messages, not one thread (recipe.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..imap.names import BULK
from .features import Sample
from .labels import normalise_subject

__all__ = ["answered_weights", "person_weights", "thread_weights"]


def thread_weights(samples: Sequence[Sample], labels: Sequence[str]) -> list[float]:
    """Each thread once per label: 1/n for each of its n messages with that label.

    A message without a subject is a thread of its own. The weights are scaled to add up to
    the number of messages, so the mail as a whole counts as much as before.
    """
    keys = [
        (normalise_subject(s.mail.subject) or f"\0{i}", label)
        for i, (s, label) in enumerate(zip(samples, labels, strict=True))
    ]
    size = Counter(keys)
    raw = [1.0 / size[key] for key in keys]
    total = sum(raw)
    return [w * len(raw) / total for w in raw] if total else raw


def person_weights(sizes: Sequence[int]) -> list[float]:
    """The factor for each person's messages so that each person's mail counts the same.

    Every person's mail then counts as much as the average person's: the total is kept.
    """
    people = [n for n in sizes if n]
    mean = sum(people) / len(people) if people else 0.0
    return [mean / n if n else 0.0 for n in sizes]


def answered_weights(
    samples: Sequence[Sample], labels: Sequence[str], factor: float
) -> list[float]:
    """One person's training weights: their urgent and normal mail by thread, times the
    person's ``factor`` (person_weights); their bulk mail 1 per message."""
    threads = thread_weights(samples, labels)
    return [1.0 if label == BULK else w * factor for w, label in zip(threads, labels, strict=True)]
