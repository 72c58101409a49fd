"""The label policy: the model's cuts, explicit cues and bulk evidence, rule by rule in order."""

from __future__ import annotations

import pytest

from commsproxy.classifier.features import Context, Sample
from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.classifier.policy import (
    BULK,
    CUE_VETO,
    NEVER_ANSWERED_AFTER,
    NORMAL,
    URGENT,
    Judgement,
    Thresholds,
    bulk_wins,
    judge,
    known_person,
    marked_bulk,
    never_answered,
    rule_delivers,
)
from commsproxy.classifier.social import SenderStats
from tests.mailfactory import render

CUTS = Thresholds(urgent=0.30, urgent_cold=0.60, bulk=0.90)


def message(body: str = "Shall we have lunch next week?", **headers: str) -> Mail:
    fields = {"From": "Ann <ann@acme.com>", "To": "me@corp.example", "Subject": "Hello"}
    fields |= {name.replace("_", "-"): value for name, value in headers.items()}
    return parse_mail(render(fields, body))


def person(body: str = "Shall we have lunch next week?", *, known: bool = True) -> Sample:
    return Sample(message(body), Context(history_known=known))


PLAIN = person()
CALL_ME = person("The order system is down, can you call me?")
NEWSLETTER_URGENT = Sample(
    message("URGENT: last chance, call me today!", List_Unsubscribe="<mailto:leave@x.example>")
)
NEWSLETTER = Sample(message("This week's articles.", List_Id="<weekly.lists.example>"))


def p(urgent: float, bulk: float) -> dict[str, float]:
    return {URGENT: urgent, NORMAL: 1.0 - urgent - bulk, BULK: bulk}


# -- rule 1: confident bulk ------------------------------------------------------------------


def test_confident_bulk_beats_an_urgent_score_and_cues() -> None:
    for sample in (PLAIN, CALL_ME):
        assert judge(sample, p(0.09, 0.91), CUTS) == Judgement(
            BULK, 0.30, "reads like bulk or spam to the model (0.91)"
        )
    # At the cut itself, too.
    assert judge(PLAIN, p(0.0, 0.90), CUTS).label == BULK


# -- rule 2: the model's urgent cut ----------------------------------------------------------


def test_model_cut_delivers_at_and_above_the_cut() -> None:
    assert judge(PLAIN, p(0.30, 0.10), CUTS) == Judgement(URGENT, 0.30, "")
    assert judge(PLAIN, p(0.29, 0.10), CUTS) == Judgement(NORMAL, 0.30, "")


def test_model_cut_is_vetoed_when_bulk_is_likelier_than_the_rest() -> None:
    # p(bulk) 0.55 is not confident bulk (below 0.90), yet likelier than not: no urgent.
    assert judge(PLAIN, p(0.40, 0.55), CUTS) == Judgement(NORMAL, 0.30, "")
    assert judge(PLAIN, p(0.40, CUE_VETO), CUTS).label == NORMAL
    assert judge(PLAIN, p(0.40, CUE_VETO - 0.01), CUTS).label == URGENT


def test_bulk_markers_hold_the_score_unless_the_user_answered_the_sender() -> None:
    """List, machine or mass mail is not urgent on the score, but for a sender once answered."""
    assert judge(NEWSLETTER, p(0.5, 0.2), CUTS) == Judgement(BULK, 0.30, "has List-Id")
    assert marked_bulk(NEWSLETTER) == "has List-Id"
    # An all-staff message from a colleague: no bulk veto for a colleague, held all the same.
    staff = Sample(
        message(To=", ".join(f"p{i}@corp.example" for i in range(16))),
        Context(relation="colleague"),
    )
    assert judge(staff, p(0.5, 0.2), CUTS) == Judgement(BULK, 0.30, "sent to 16 recipients")
    answered = Sample(NEWSLETTER.mail, Context(sender=SenderStats(4, 1, 30.0, None)))
    assert marked_bulk(answered) is None
    assert judge(answered, p(0.5, 0.2), CUTS) == Judgement(URGENT, 0.30, "")
    # Without history nobody is known to be answered.
    cold = Sample(
        NEWSLETTER.mail, Context(sender=SenderStats(4, 1, 30.0, None), history_known=False)
    )
    assert judge(cold, p(0.7, 0.2), CUTS).label == BULK
    assert marked_bulk(PLAIN) is None


# -- rule 3: cues without bulk evidence ------------------------------------------------------


def test_a_cue_delivers_whatever_the_score() -> None:
    judged = judge(CALL_ME, p(0.01, 0.10), CUTS)
    assert judged.label == URGENT
    assert judged.threshold == 0.30
    assert judged.rule == 'says "system is down"; asks for a call ("can you call me")'


def test_a_reply_to_the_users_own_mail_is_a_cue() -> None:
    reply = Sample(message("Thanks, noted."), Context(replies_to_user=True))
    assert judge(reply, p(0.01, 0.10), CUTS) == Judgement(
        URGENT, 0.30, "a reply to a message you sent"
    )


def test_bulk_markers_veto_a_cue() -> None:
    judged = judge(NEWSLETTER_URGENT, p(0.01, 0.10), CUTS)
    assert judged == Judgement(BULK, 0.30, "has List-Unsubscribe")


def test_a_machine_sender_vetoes_a_cue() -> None:
    alert = Sample(parse_mail(render({"From": "noreply@shop.example"}, "URGENT: act now")))
    assert judge(alert, p(0.01, 0.10), CUTS) == Judgement(
        BULK, 0.30, "automated sender noreply@shop.example"
    )


def test_likelier_bulk_vetoes_a_cue() -> None:
    assert judge(CALL_ME, p(0.01, CUE_VETO), CUTS) == Judgement(NORMAL, 0.30, "")
    assert judge(CALL_ME, p(0.01, CUE_VETO - 0.01), CUTS).label == URGENT


# -- rule 4: bulk on markers -----------------------------------------------------------------


def test_markers_make_bulk_whatever_the_model_prefers() -> None:
    assert judge(NEWSLETTER, p(0.05, 0.05), CUTS) == Judgement(BULK, 0.30, "has List-Id")


# -- rule 5: a person's mail is normal, never bulk without evidence ---------------------------


@pytest.mark.parametrize("p_bulk", [0.34, 0.5, 0.7, 0.89])
def test_a_persons_mail_the_model_merely_prefers_as_bulk_is_normal(p_bulk: float) -> None:
    assert judge(PLAIN, p(0.05, p_bulk), CUTS) == Judgement(NORMAL, 0.30, "")


def test_without_a_bulk_cut_the_model_never_decides_bulk_alone() -> None:
    no_bulk_cut = Thresholds(urgent=0.30, urgent_cold=0.60)
    assert judge(PLAIN, p(0.0, 0.99), no_bulk_cut).label == NORMAL


# -- warm and cold cuts ----------------------------------------------------------------------


def test_the_cut_follows_whether_history_is_known() -> None:
    warm, cold = person(known=True), person(known=False)
    assert judge(warm, p(0.45, 0.1), CUTS) == Judgement(URGENT, 0.30, "")
    assert judge(cold, p(0.45, 0.1), CUTS) == Judgement(NORMAL, 0.60, "")
    assert judge(cold, p(0.60, 0.1), CUTS) == Judgement(URGENT, 0.60, "")
    assert CUTS.urgent_for(warm) == 0.30
    assert CUTS.urgent_for(cold) == 0.60


def test_without_a_measured_cut_the_likeliest_label_decides() -> None:
    none = Thresholds()
    assert judge(PLAIN, p(0.5, 0.1), none) == Judgement(URGENT, None, "")
    assert judge(PLAIN, p(0.3, 0.1), none) == Judgement(NORMAL, None, "")
    # Only p(urgent) given (a model without the other classes named).
    assert judge(PLAIN, {URGENT: 0.2, NORMAL: 0.8}, none).label == NORMAL


# -- Thresholds ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "fallback", "expected"),
    [
        ({}, None, Thresholds(None, None, None)),
        # An older sidecar: one threshold, used with and without history; no bulk cut.
        ({}, 0.4, Thresholds(0.4, 0.4, None)),
        ({"urgent": 0.2}, 0.4, Thresholds(0.2, 0.2, None)),
        ({"urgent": 0.2, "bulk": 0.9}, None, Thresholds(0.2, 0.2, 0.9)),
        ({"urgent_cold": 0.5}, 0.4, Thresholds(0.4, 0.5, None)),
        ({"urgent": 0.2, "urgent_cold": 0.5, "bulk": 0.9}, 0.4, Thresholds(0.2, 0.5, 0.9)),
    ],
)
def test_thresholds_from_a_sidecar(
    values: dict[str, float], fallback: float | None, expected: Thresholds
) -> None:
    assert Thresholds.from_mapping(values, fallback) == expected


def test_thresholds_as_dict_leaves_out_what_was_not_measured() -> None:
    assert CUTS.as_dict() == {"urgent": 0.30, "urgent_cold": 0.60, "bulk": 0.90}
    assert Thresholds(0.3).as_dict() == {"urgent": 0.3}
    assert Thresholds.from_mapping(CUTS.as_dict(), None) == CUTS


# -- a sender the user has answered is a person ----------------------------------------------


def answered(body: str = "Shall we have lunch next week?", *, known: bool = True) -> Sample:
    history = SenderStats(received=12, replied=9, median_reply_minutes=40.0, last_reply_days_ago=2)
    return Sample(message(body), Context(sender=history, history_known=known))


def test_no_bulk_score_counts_against_a_sender_the_user_answered() -> None:
    assert known_person(answered())
    assert judge(answered(), p(0.05, 0.95), CUTS) == Judgement(NORMAL, 0.30, "")
    assert judge(answered(), p(0.35, 0.60), CUTS) == Judgement(URGENT, 0.30, "")
    call_me = answered("Can you call me?")
    assert judge(call_me, p(0.0, 0.95), CUTS).label == URGENT
    assert rule_delivers(call_me, 0.95, CUTS.bulk)


def test_an_answered_sender_without_known_history_gets_no_exemption() -> None:
    cold = answered(known=False)
    assert not known_person(cold)
    assert judge(cold, p(0.05, 0.95), CUTS).label == BULK


@pytest.mark.parametrize("relation", ["colleague", "customer"])
def test_colleagues_and_customers_by_the_config_are_people_too(relation: str) -> None:
    sample = Sample(message(), Context(history_known=False, relation=relation))
    assert known_person(sample)
    assert judge(sample, p(0.05, 0.95), CUTS) == Judgement(NORMAL, 0.60, "")
    assert judge(sample, p(0.65, 0.60), CUTS) == Judgement(URGENT, 0.60, "")
    assert not known_person(Sample(message(), Context(relation="supplier")))


def test_a_sender_never_answered_gets_no_exemption() -> None:
    ignored = SenderStats(
        received=12, replied=0, median_reply_minutes=None, last_reply_days_ago=None
    )
    sample = Sample(message(), Context(sender=ignored))
    assert not known_person(sample)
    assert bulk_wins(sample, 0.95, CUTS.bulk) == "confident"
    assert bulk_wins(sample, 0.6, CUTS.bulk) == "veto"
    assert bulk_wins(sample, 0.4, CUTS.bulk) == ""


def unanswered(
    received: int,
    body: str = "Shall we have lunch next week?",
    *,
    replies_to_user: bool = False,
    history_known: bool = True,
    relation: str | None = None,
) -> Sample:
    history = SenderStats(
        received=received, replied=0, median_reply_minutes=None, last_reply_days_ago=None
    )
    context = Context(
        sender=history,
        replies_to_user=replies_to_user,
        history_known=history_known,
        relation=relation,
    )
    return Sample(message(body), context)


def test_a_score_does_not_deliver_mail_from_a_sender_never_answered() -> None:
    ignored = unanswered(NEVER_ANSWERED_AFTER)
    assert never_answered(ignored)
    assert judge(ignored, p(0.5, 0.1), CUTS) == Judgement(
        NORMAL, 0.30, f"you never answered ann@acme.com ({NEVER_ANSWERED_AFTER} messages before)"
    )
    # Below the cut nothing changes, and no rule is named.
    assert judge(ignored, p(0.1, 0.1), CUTS) == Judgement(NORMAL, 0.30, "")
    # Without a measured cut, the likeliest label is held back the same way.
    assert judge(ignored, p(0.8, 0.1), Thresholds()).label == NORMAL
    # Bulk evidence still decides bulk.
    listed = Sample(NEWSLETTER.mail, ignored.context)
    assert judge(listed, p(0.5, 0.1), CUTS) == Judgement(BULK, 0.30, "has List-Id")


def test_what_the_message_says_still_delivers_from_a_sender_never_answered() -> None:
    ignored = unanswered(12, "The order system is down, can you call me?")
    assert judge(ignored, p(0.5, 0.1), CUTS).label == URGENT
    assert judge(unanswered(12, replies_to_user=True), p(0.5, 0.1), CUTS).label == URGENT


def test_one_unanswered_message_answered_senders_and_no_history_are_left_to_the_score() -> None:
    assert not never_answered(unanswered(NEVER_ANSWERED_AFTER - 1))
    assert judge(unanswered(NEVER_ANSWERED_AFTER - 1), p(0.5, 0.1), CUTS).label == URGENT
    assert not never_answered(answered())
    assert not never_answered(unanswered(12, history_known=False))
    assert judge(unanswered(12, history_known=False), p(0.7, 0.1), CUTS).label == URGENT


def test_customers_are_not_held_for_going_unanswered() -> None:
    sample = unanswered(12, relation="customer")
    assert not never_answered(sample)
    assert judge(sample, p(0.5, 0.1), CUTS).label == URGENT


def test_a_colleague_never_answered_waits_but_is_never_bulk_by_the_model() -> None:
    # "Colleague" is everyone at the user's own domain: an all-staff sender included.
    sample = unanswered(NEVER_ANSWERED_AFTER, relation="colleague")
    assert never_answered(sample)
    assert judge(sample, p(0.5, 0.1), CUTS) == Judgement(
        NORMAL, 0.30, f"you never answered ann@acme.com ({NEVER_ANSWERED_AFTER} messages before)"
    )
    # Still a person: no bulk from the model's score, and what the message says delivers.
    assert judge(sample, p(0.05, 0.95), CUTS).label == NORMAL
    call_me = unanswered(12, "The order system is down, can you call me?", relation="colleague")
    assert judge(call_me, p(0.5, 0.1), CUTS).label == URGENT
    # A colleague answered once, or written to once, is left to the score.
    assert not never_answered(unanswered(NEVER_ANSWERED_AFTER - 1, relation="colleague"))


def test_markers_still_make_an_answered_senders_list_mail_bulk() -> None:
    history = SenderStats(received=3, replied=1, median_reply_minutes=5.0, last_reply_days_ago=1)
    listed = Sample(NEWSLETTER.mail, Context(sender=history))
    assert judge(listed, p(0.05, 0.2), CUTS) == Judgement(BULK, 0.30, "has List-Id")


# -- rule_delivers: what training counts as delivered by the rules ---------------------------


def test_rule_delivers_cues_without_bulk_evidence() -> None:
    assert rule_delivers(CALL_ME, 0.1, CUTS.bulk)
    assert not rule_delivers(CALL_ME, CUE_VETO, CUTS.bulk)
    assert not rule_delivers(NEWSLETTER_URGENT, 0.1, CUTS.bulk)
    assert not rule_delivers(PLAIN, 0.1, CUTS.bulk)
    # A bulk cut below the veto: confident bulk wins over the cue there too.
    assert not rule_delivers(CALL_ME, 0.4, 0.3)
    assert judge(CALL_ME, p(0.0, 0.4), Thresholds(0.3, 0.6, 0.3)).label == BULK


SAMPLES = {
    "plain": PLAIN,
    "call me": CALL_ME,
    "newsletter": NEWSLETTER,
    "urgent newsletter": NEWSLETTER_URGENT,
    "cold": person(known=False),
    "answered": answered(),
    "customer": Sample(message("Can you call me?"), Context(relation="customer")),
}


@pytest.mark.parametrize("bulk_cut", [0.3, 0.9, None])
@pytest.mark.parametrize("p_bulk", [0.0, 0.2, 0.35, 0.49, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("p_urgent", [0.0, 0.3, 0.6])
@pytest.mark.parametrize("name", list(SAMPLES))
def test_what_the_rules_deliver_judge_makes_urgent(
    name: str, p_urgent: float, p_bulk: float, bulk_cut: float | None
) -> None:
    """rule_delivers agrees with judge: training counts what triage will do."""
    sample = SAMPLES[name]
    thresholds = Thresholds(0.30, 0.60, bulk_cut)
    judged = judge(sample, {URGENT: p_urgent, BULK: p_bulk}, thresholds)
    if rule_delivers(sample, p_bulk, bulk_cut):
        assert judged.label == URGENT
    if judged.label == URGENT and judged.rule:
        assert rule_delivers(sample, p_bulk, bulk_cut)
