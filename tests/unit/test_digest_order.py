"""Which released messages were likely mistakes, and the rank of the rest (digest_order.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from commsproxy.classifier.features import Context
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.social import NO_HISTORY, SenderStats
from commsproxy.config import AccountConfig, AccountsConfig
from commsproxy.triage.digest_order import Ordering, Rank, likely_mistake, rank_of
from commsproxy.triage.history import LiveHistory


def mail(
    sender: str = "ann@acme.example",
    subject: str = "notes",
    body: str = "",
    headers: dict[str, str] | None = None,
    in_reply_to: tuple[str, ...] = (),
) -> Mail:
    return Mail(
        message_id="<m@x>",
        in_reply_to=in_reply_to,
        references=(),
        date=None,
        sender=sender,
        sender_name="",
        to=("me@corp.example",),
        cc=(),
        subject=subject,
        body=body,
        headers=headers or {},
    )


class History:
    """A made-up history: stats per sender and domain, relations, sent Message-IDs."""

    def __init__(
        self,
        senders: dict[str, SenderStats] | None = None,
        domains: dict[str, SenderStats] | None = None,
        customers: tuple[str, ...] = (),
        sent: tuple[str, ...] = (),
    ) -> None:
        self.senders = senders or {}
        self.domains = domains or {}
        self.customers = customers
        self.sent = sent

    def sender_stats(self, address: str) -> SenderStats:
        return self.senders.get(address, NO_HISTORY)

    def domain_stats(self, address_or_domain: str) -> SenderStats:
        return self.domains.get(address_or_domain.rpartition("@")[2], NO_HISTORY)

    def relation(self, sender: str) -> str | None:
        return "customer" if sender.rpartition("@")[2] in self.customers else None

    def context(self, mail: Mail, user_addresses: frozenset[str]) -> Context:
        return Context(replies_to_user=any(i in self.sent for i in mail.in_reply_to))


def stats(received: int, replied: int, median: float | None) -> SenderStats:
    return SenderStats(received, replied, median, None)


def test_urgent_wording_in_a_persons_mail_is_a_likely_mistake() -> None:
    why = likely_mistake(mail(subject="Server down", body="Please call me back today."), None)
    assert 'it says "server down"' in why
    assert 'it asks you to call ("call me back today")' in why


def test_urgent_wording_from_a_stranger_is_not() -> None:
    """Nobody the user knows (no mail from the sender or domain before, no customer): held
    mail that says "urgent" from them is mostly spam the model vetoed."""
    urgent = mail("x@spam.example", subject="URGENT reply needed")
    assert likely_mistake(urgent, History(), "normal") == ()
    known = History(domains={"spam.example": stats(3, 0, None)})
    assert likely_mistake(urgent, known, "normal") == ('it says "urgent"',)
    customer = History(customers=("spam.example",))
    assert likely_mistake(urgent, customer, "normal") == ('it says "urgent"',)
    # Put in a hold mailbox by hand (no decision): it was never counted as received.
    once = History({"x@spam.example": stats(1, 0, None)})
    assert likely_mistake(urgent, once, "normal") == ()
    assert likely_mistake(urgent, once, None) == ('it says "urgent"',)


def test_urgent_wording_in_what_triage_called_bulk_is_not() -> None:
    urgent = mail(subject="URGENT reply needed")
    assert likely_mistake(urgent, None, "bulk") == ()
    assert likely_mistake(urgent, None, "normal") == ('it says "urgent"',)


def test_urgent_wording_in_a_newsletter_is_not() -> None:
    news = mail(subject="URGENT: last chance", headers={"list-unsubscribe": "<mailto:x>"})
    assert likely_mistake(news, None) == ()


def test_nothing_urgent_and_no_history_is_no_mistake() -> None:
    assert likely_mistake(mail(subject="notes"), None) == ()
    assert likely_mistake(mail(subject="notes"), History()) == ()


def test_a_sender_the_user_answers_quickly_is_a_likely_mistake() -> None:
    history = History({"ann@acme.example": stats(6, 4, 12.0)})
    assert likely_mistake(mail(), history) == ("you usually answer ann@acme.example within 12 min",)


def test_a_sender_the_user_answers_often_is_a_likely_mistake() -> None:
    history = History({"ann@acme.example": stats(8, 5, 600.0)})
    assert likely_mistake(mail(), history) == (
        "you answered ann@acme.example 5 times in 8 messages",
    )


def test_a_sender_answered_once_or_slowly_and_rarely_is_not() -> None:
    assert likely_mistake(mail(), History({"ann@acme.example": stats(3, 1, 5.0)})) == ()
    assert likely_mistake(mail(), History({"ann@acme.example": stats(20, 3, 900.0)})) == ()


def test_a_reply_to_the_users_own_message_is_a_likely_mistake() -> None:
    history = History(sent=("<mine@corp>",))
    assert likely_mistake(mail(in_reply_to=("<mine@corp>",)), history) == (
        "it answers a message you sent",
    )


def test_a_customers_colleague_counts_by_the_domain() -> None:
    history = History(domains={"acme.example": stats(30, 20, 25.0)}, customers=("acme.example",))
    assert likely_mistake(mail("new@acme.example"), history) == (
        "you usually answer people at acme.example within 25 min",
    )
    # Not for a domain that is no customer: one quick colleague makes no whole domain urgent.
    other = History(domains={"acme.example": stats(30, 20, 25.0)})
    assert likely_mistake(mail("new@acme.example"), other) == ()


def test_rank_people_customers_rest_bulk() -> None:
    history = History({"ann@acme.example": stats(3, 1, 600.0)}, customers=("beta.example",))
    news = mail("news@x.example", headers={"list-id": "<x>"})
    assert rank_of(mail(), "normal", None, ("m",), history) == Rank.MISTAKE
    assert rank_of(mail(), "normal", None, (), history) == Rank.ANSWERED
    assert rank_of(mail("bo@beta.example"), "normal", None, (), history) == Rank.CUSTOMER
    assert rank_of(mail("x@y.example"), "normal", "Gamma", (), history) == Rank.CUSTOMER
    assert rank_of(mail("x@y.example"), "normal", None, (), history) == Rank.OTHER
    assert rank_of(mail("x@y.example"), "bulk", None, (), history) == Rank.BULK
    assert rank_of(news, "normal", None, (), None) == Rank.BULK


def test_ordering_is_rank_then_newest_first() -> None:
    old = Ordering(Rank.OTHER, datetime(2024, 1, 1, tzinfo=UTC))
    new = Ordering(Rank.OTHER, datetime(2024, 1, 2, tzinfo=UTC))
    undated = Ordering(Rank.OTHER, None)
    person = Ordering(Rank.ANSWERED, datetime(2020, 1, 1, tzinfo=UTC))
    assert sorted([old, undated, new, person], key=Ordering.key) == [person, new, old, undated]


def test_the_live_history_is_what_the_digest_asks() -> None:
    """triage/history.LiveHistory answers the digest's questions as the fake above does."""
    accounts = AccountsConfig(accounts=(AccountConfig("Acme", "Acme", ("acme.example",), ()),))
    history = LiveHistory(["me@corp.example"], accounts=accounts)
    history.known = True
    assert likely_mistake(mail(), history) == ()
    assert rank_of(mail(), "normal", None, (), history) == Rank.CUSTOMER


def test_without_the_body_read_only_the_history_counts() -> None:
    urgent = mail(subject="URGENT reply needed")
    assert likely_mistake(urgent, None, "normal", wording=False) == ()
    quick = History({"ann@acme.example": stats(6, 4, 12.0)})
    assert likely_mistake(urgent, quick, "normal", wording=False) == (
        "you usually answer ann@acme.example within 12 min",
    )
