"""The first-day benchmark judges mail with the sender's relation live triage gives it."""

from __future__ import annotations

import sys
from pathlib import Path

from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.policy import known_person
from tests.mailfactory import render

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from first_day import as_live

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
