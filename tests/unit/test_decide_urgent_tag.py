"""``me+urgent@``: mail to the user's own address with the tag comes through at once."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.triage.decide import Decision, RuleDecider, UrgentTag
from commsproxy.triage.plain_reasons import parse_reason, plain_reason

JAN = UrgentTag.of("urgent", ["jan@acme.be", "jan.peeters@acme.be"])


def mail(headers: str, body: str = "Unsubscribe here. 50% off this week only!") -> Mail:
    text = "From: Shop <deals@shop.example>\r\nSubject: Deals\r\n" + headers + "\r\n" + body
    return parse_mail(text.encode())


class Bulk:
    """A model that calls everything bulk, and says so."""

    def label(self, mails: Sequence[Mail]) -> list[Decision]:
        return [Decision("bulk", 0.01, "bulk (0.01)") for _ in mails]


@pytest.mark.parametrize(
    "headers",
    [
        "To: jan+urgent@acme.be\r\n",
        "To: someone@else.example\r\nCc: Jan <JAN+Urgent@ACME.BE>\r\n",
        "To: list@else.example\r\nDelivered-To: jan+urgent@acme.be\r\n",
        "To: undisclosed-recipients:;\r\nX-Original-To: jan.peeters+urgent@acme.be\r\n",
        "Received: from mx by imap (Dovecot) with LMTP id x\r\n"
        "\tfor <jan+urgent@acme.be>; Mon, 7 Dec 2026 10:00:00 +0000\r\nTo: a@b.example\r\n",
    ],
    ids=["to", "cc", "delivered-to", "x-original-to", "received-for"],
)
def test_tagged_own_address_is_urgent(headers: str) -> None:
    (decision,) = RuleDecider([], Bulk(), urgent=JAN).decide([mail(headers)])
    assert decision.label == "urgent"
    assert decision.reason.startswith("sent to your +urgent address (jan")
    words = parse_reason(decision.reason)
    assert words.label == "urgent"
    assert words.text().startswith("sent to your urgent address (jan")


def test_a_message_held_in_quiet_hours_says_so() -> None:
    assert plain_reason("normal (0.02, urgent from 0.04) (quiet hours: held until they end)") == (
        "no sign it is urgent; it came in quiet hours, so it waited for their end"
    )


@pytest.mark.parametrize(
    "headers",
    [
        "To: jan@acme.be\r\n",  # no tag
        "To: piet+urgent@acme.be\r\n",  # someone else's tag
        "To: jan+urgent@acme.be.evil.example\r\n",  # not the own domain
        "To: jan+urgently@acme.be\r\n",  # another tag
        "To: +urgent@acme.be\r\n",  # no local part before the tag
        "Received: from a by b; for <jan+urgent@acme.be> in the text\r\nTo: x@y.example\r\n",
    ],
)
def test_other_addresses_are_left_to_the_model(headers: str) -> None:
    (decision,) = RuleDecider([], Bulk(), urgent=JAN).decide([mail(headers)])
    assert decision.label == "bulk"


def test_tag_wins_over_never_urgent_and_vip_keeps_its_reason() -> None:
    tagged = mail("To: jan+urgent@acme.be\r\n")
    decider = RuleDecider(["deals@shop.example"], Bulk(), ["*@shop.example"], JAN)
    (decision,) = decider.decide([tagged])
    assert (decision.label, decision.reason) == (
        "urgent",
        "sent to your +urgent address (jan+urgent@acme.be)",
    )
    never = RuleDecider([], Bulk(), ["*@shop.example"], JAN)
    assert never.decide([tagged])[0].label == "urgent"


def test_a_custom_tag_and_an_empty_one() -> None:
    now = UrgentTag.of("Now", ["jan@acme.be"])
    assert RuleDecider([], Bulk(), urgent=now).decide([mail("To: jan+now@acme.be\r\n")])[
        0
    ].reason == ("sent to your +now address (jan+now@acme.be)")
    off = UrgentTag.of("", ["jan@acme.be"])
    assert off.match(mail("To: jan+@acme.be\r\nCc: jan+urgent@acme.be\r\n")) is None


def test_user_name_without_domain_matches_any_local_part_at_the_team_domain() -> None:
    team = UrgentTag.of("urgent", ["jan@acme.be"], ["acme.be"])
    assert team.match(mail("To: jan.peeters+urgent@acme.be\r\n")) == "jan.peeters+urgent@acme.be"
    assert team.match(mail("To: jan.peeters+urgent@other.be\r\n")) is None


def test_envelope_recipients_are_read() -> None:
    parsed = mail(
        "Delivered-To: a@x.example\r\nDelivered-To: b@x.example\r\n"
        "X-Original-To: c@x.example\r\nEnvelope-To: a@x.example\r\n"
    )
    assert parsed.envelope_to == ("a@x.example", "b@x.example", "c@x.example")
