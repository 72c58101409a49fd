"""The first-day benchmark: the sender's relation as live triage gives it; pooled rows."""

from __future__ import annotations

import sys
from pathlib import Path

from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.policy import known_person
from tests.mailfactory import render

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from first_day import Mode, Share, as_live, lines, pooled, ranking  # type: ignore[import-not-found]

ME = frozenset({"me@corp.example"})


def sample(sender: str, *, user: frozenset[str] = ME) -> Sample:
    mail = parse_mail(render({"From": sender, "To": "me@corp.example", "Subject": "Hi"}, "Lunch?"))
    return Sample(mail, Context(user_addresses=user, history_known=False))


def test_a_sender_at_the_users_own_domain_is_a_colleague() -> None:
    colleague, below, outsider = as_live(
        [sample("bob@corp.example"), sample("bob@eu.corp.example"), sample("ann@acme.example")],
        ME,
    )
    assert colleague.context.relation == "colleague"
    assert known_person(colleague)
    assert below.context.relation == "colleague"  # a subdomain is internal too
    assert outsider.context.relation is None
    assert not known_person(outsider)


def test_freemail_is_never_internal_and_the_rest_of_the_context_is_kept() -> None:
    gmail = frozenset({"me@gmail.com"})
    (stranger,) = as_live([sample("someone@gmail.com", user=gmail)], gmail)
    assert stranger.context.relation is None
    assert stranger.context.user_addresses == gmail
    assert stranger.context.history_known is False
    (nobody,) = as_live([sample("bob@corp.example")], frozenset())
    assert nobody.context.relation is None


def test_pooled_adds_each_users_counts() -> None:
    assert pooled([Share(1, 1), Share(3, 6), Share(0, 0)]) == Share(4, 7)
    assert pooled([]) == Share(0, 0)


def test_lines_end_with_all_users_pooled_per_mode() -> None:
    def mode(k: int, n: int) -> Mode:
        return Mode(Share(k, n), Share(60, 100), Share(k, 303), Share(0, 50))

    row = {"cold": mode(1, 2), "warm": mode(2, 2), "bundled_on_newest": mode(1, 1),
           "trained": {"skipped": "too little mail"}}  # fmt: skip
    text, _ = lines({"ann": row, "bob": {**row, "warm": mode(3, 4)}})
    assert text[-2].startswith("all 2 | cold | 2/4 50% ")
    assert text[-1].startswith("all 2 | warm | 5/6 83% ")
    assert "| 120/200 60% " in text[-1]
    assert "| at most 3/303 per user |" in text[-1]


def test_ranking_is_the_chance_an_urgent_message_outscores_the_rest() -> None:
    assert ranking([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert ranking([0.9, 0.2, 0.1], [False, False, True]) == 0.0
    # One urgent message tied with one of two others: half a win there, a win over the other.
    assert ranking([0.5, 0.5, 0.1], [True, False, False]) == 0.75
    assert ranking([0.3, 0.4], [True, True]) is None  # nothing to rank against
    assert ranking([], []) is None


def test_a_mode_reports_its_ranking_without_the_scores() -> None:
    mode = Mode(Share(1, 1), Share(1, 2), Share(0, 3), scored=[(1.0, True), (-1.0, False)])
    report = mode.as_dict()
    assert report["ranking_auc"] == 1.0
    assert "scored" not in report
    assert report["delivered"]["k"] == 1
