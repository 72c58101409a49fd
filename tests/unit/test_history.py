"""LiveHistory: the history with senders kept current as mail flows, and what it tells triage."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from commsproxy.classifier.contacts import Contacts
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.social import SenderStats
from commsproxy.config import AccountConfig, AccountsConfig
from commsproxy.triage import history as history_module
from commsproxy.triage.history import LiveHistory

ME = "me@corp.example"
ANN = "ann@acme.example"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ACCOUNTS = AccountsConfig(
    accounts=(
        AccountConfig("acme", "Acme", domains=("acme.example",), addresses=("x@gmail.com",)),
    ),
    internal_domains=("team.example",),
)


def mail(
    sender: str,
    minutes: float,
    mid: str | None,
    subject: str = "order",
    *,
    parent: str | None = None,
    folder: str = "INBOX",
) -> Mail:
    return Mail(
        message_id=mid,
        in_reply_to=(parent,) if parent else (),
        references=(parent,) if parent else (),
        date=T0 + timedelta(minutes=minutes),
        sender=sender,
        sender_name="",
        to=(ME,) if sender != ME else (ANN,),
        cc=(),
        subject=subject,
        body="",
        folder=folder,
    )


def answer(minutes: float, parent: str, mid: str, subject: str = "Re: order") -> Mail:
    return mail(ME, minutes, mid, subject, parent=parent, folder="Sent")


def live(**kwargs: object) -> LiveHistory:
    made = LiveHistory([ME], accounts=ACCOUNTS, **kwargs)  # type: ignore[arg-type]
    made.known = True
    return made


def counts(history: LiveHistory, address: str) -> tuple[int, int, float | None]:
    stats = history.sender_stats(address)
    return stats.received, stats.replied, stats.median_reply_minutes


def test_received_counts_once_per_message_and_never_the_users_own() -> None:
    history = live()
    assert history.add_received(mail(ANN, 0, "<a1@x>"))
    assert not history.add_received(mail(ANN, 0, "<a1@x>"))  # the first read, then triage
    assert history.add_received(mail(ANN, 5, None))
    assert not history.add_received(mail(ANN, 5, None))  # no Message-ID: same date and subject
    assert not history.add_received(mail(ME, 6, "<mine@x>"))
    assert counts(history, ANN) == (2, 0, None)
    assert history.domain_stats("acme.example").received == 2
    assert len(history) == 1


def test_a_reply_counts_with_its_latency_once_and_its_id_marks_answers_to_it() -> None:
    history = live()
    history.add_received(mail(ANN, 0, "<a1@x>"))
    history.add_received(mail(ANN, 60, "<a2@x>", "invoice"))
    assert history.add_sent(answer(10, "<a1@x>", "<r1@x>"))
    assert history.add_sent(answer(90, "<a2@x>", "<r2@x>", "Re: invoice"))
    assert not history.add_sent(answer(10, "<a1@x>", "<r1@x>"))  # its copy in Sent
    assert history.add_sent(answer(200, "<a1@x>", "<r3@x>"))  # a second answer: not a reply
    assert counts(history, ANN) == (2, 2, 20.0)
    assert history.domain_stats(ANN) == SenderStats(2, 2, 20.0, None)
    follow_up = mail(ANN, 300, "<a3@x>", "Re: Re: order", parent="<r3@x>")
    context = history.context(follow_up, frozenset())
    assert context.replies_to_user
    assert context.history_known
    assert not history.context(mail(ANN, 300, "<a4@x>"), frozenset()).replies_to_user


def test_a_reply_without_headers_is_found_by_its_subject() -> None:
    history = live()
    history.add_received(mail(ANN, 0, "<a1@x>", "Budget Q3"))
    history.add_sent(replace(answer(45, "<a1@x>", "<r1@x>", "RE: budget q3"), in_reply_to=(),
                             references=()))  # fmt: skip
    assert counts(history, ANN) == (1, 1, 45.0)


def test_the_first_read_matches_replies_and_infers_the_users_addresses() -> None:
    mails = [
        mail(ANN, 0, "<a1@x>"),
        mail(ANN, 100, "<a2@x>", "invoice"),
        mail("bob@team.example", 200, "<b1@x>", "plan"),
        answer(30, "<a1@x>", "<r1@x>"),
        replace(answer(160, "<a2@x>", "<r2@x>", "Re: invoice"), sender="me@home.example"),
        replace(answer(170, "<zz@x>", "<r3@x>", "Re: x"), sender="me@home.example"),
    ]
    history = LiveHistory(accounts=ACCOUNTS)
    history.absorb(mails, is_sent=lambda m: m.folder == "Sent", login="me@corp.example")
    history.known = True
    assert history.user_addresses == {ME, "me@home.example"}
    assert counts(history, ANN) == (2, 2, 45.0)
    assert counts(history, "bob@team.example") == (1, 0, None)
    assert history.sent_count == 3
    # Counted at the first read: triage seeing the same message again adds nothing.
    assert not history.add_received(mail(ANN, 0, "<a1@x>"))


@pytest.mark.parametrize(
    ("sender", "relation"),
    [
        ("bob@corp.example", "colleague"),  # the user's own domain
        ("eve@team.example", "colleague"),  # [accounts] internal_domains
        ("eve@eu.team.example", "colleague"),
        (ANN, "customer"),  # an [accounts.X] domain
        ("buyer@shop.acme.example", "customer"),
        ("x@gmail.com", "customer"),  # an [accounts.X] address
        ("y@gmail.com", None),
        ("someone@elsewhere.example", None),
    ],
)
def test_relation_from_the_config_and_the_users_domain(sender: str, relation: str | None) -> None:
    history = live()
    assert history.relation(sender) == relation
    assert history.context(mail(sender, 0, "<m@x>"), frozenset()).relation == relation


def test_a_freemail_user_does_not_make_every_freemail_sender_a_colleague() -> None:
    history = LiveHistory(["me@gmail.com"])
    assert history.relation("stranger@gmail.com") is None


def test_before_the_history_is_known_mail_is_scored_cold_or_from_training() -> None:
    cold = LiveHistory([ME], accounts=ACCOUNTS)
    cold.add_received(mail(ANN, 0, "<a1@x>"))
    context = cold.context(mail(ANN, 10, "<a2@x>"), frozenset({"other@corp.example"}))
    assert not context.history_known
    assert context.sender is None
    assert context.relation == "customer"
    assert context.user_addresses == {ME, "other@corp.example"}
    ann = SenderStats(10, 9, 12.0, None)
    trained = Contacts(None, T0, frozenset({ME}), {ANN: ann}, {"acme.example": ann}, frozenset())
    warm = LiveHistory([ME], accounts=ACCOUNTS, fallback=trained)
    context = warm.context(mail(ANN, 10, "<a2@x>"), frozenset())
    assert context.sender == ann
    assert context.history_known
    assert context.relation == "customer"
    warm.known = True  # the live history, once read, replaces the trained one
    assert warm.context(mail(ANN, 10, "<a2@x>"), frozenset()).sender == SenderStats(
        0, 0, None, None
    )


def test_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_module, "MAX_SENT_IDS", 3)
    monkeypatch.setattr(history_module, "MAX_RECEIVED", 4)
    monkeypatch.setattr(history_module, "MAX_SENDERS", 2)
    history = live()
    for i in range(60):
        history.add_received(mail(ANN, i * 10, f"<a{i}@x>", f"s{i}"))
        history.add_sent(answer(i * 10 + i, f"<a{i}@x>", f"<r{i}@x>", f"Re: s{i}"))
    received, replied, middle = counts(history, ANN)
    assert (received, replied) == (60, 60)
    assert middle == 34.5  # the median of the last 50 latencies: 10 to 59 minutes
    document = history.to_document()
    assert document["sent_ids"] == ["r57@x", "r58@x", "r59@x"]
    assert [row[0] for row in document["received"]] == ["a56@x", "a57@x", "a58@x", "a59@x"]
    for i in range(3):
        history.add_received(mail(f"p{i}@other{i}.example", 0, f"<p{i}@x>"))
    assert len(history) == 2  # the least recently active sender went first
    assert history.sender_stats(ANN).received == 0


def test_saved_and_loaded_it_is_the_same_history() -> None:
    history = live()
    history.add_received(mail(ANN, 0, "<a1@x>"))
    history.add_received(mail(ANN, 50, None, "undated?"))
    history.add_sent(answer(25, "<a1@x>", "<r1@x>"), from_user=True)
    history.add_sent(replace(answer(30, "<z@x>", "<r2@x>"), sender="me@phone.example"),
                     from_user=True)  # fmt: skip
    document = json.loads(json.dumps(history.to_document()))
    loaded = LiveHistory([ME], accounts=ACCOUNTS)
    loaded.load_document(document)
    assert loaded.known
    assert not loaded.changed
    assert counts(loaded, ANN) == (2, 1, 25.0)
    assert loaded.user_addresses == {ME, "me@phone.example"}
    assert loaded.to_document() == history.to_document()
    # What was answered stays answered: a second reply to it after loading is not counted.
    loaded.add_sent(answer(60, "<a1@x>", "<r9@x>"))
    assert counts(loaded, ANN) == (2, 1, 25.0)


@pytest.mark.parametrize(
    "document",
    [
        {"format": 99},
        {"format": 1, "senders": {}},
        {
            "format": 1,
            "users": [],
            "senders": {"a@b": ["1", 0, []]},
            "domains": {},
            "sent_ids": [],
            "received": [],
        },
        {
            "format": 1,
            "users": [],
            "senders": {},
            "domains": {},
            "sent_ids": [],
            "received": [["k", None, "a@b", "yesterday", "", False]],
        },
    ],
)
def test_a_broken_saved_history_is_refused_and_changes_nothing(document: dict[str, object]) -> None:
    history = live()
    history.add_received(mail(ANN, 0, "<a1@x>"))
    with pytest.raises(ValueError, match="not a saved history"):
        history.load_document(document)
    assert counts(history, ANN) == (1, 0, None)
