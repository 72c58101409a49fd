"""Contacts: the history with each sender as of training, saved beside the model and given to
live mail, so triage sees the social features the model learned from."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commsproxy.classifier.contacts import Contacts, ContactsError, contacts_path
from commsproxy.classifier.features import Sample, meta_features
from commsproxy.classifier.mail import Mail
from commsproxy.classifier.predict import Verdict
from commsproxy.classifier.social import SocialHistory
from commsproxy.triage.decide import ModelDecider

from .test_social import ME, is_sent, received, reply

NOW = datetime(2024, 4, 1, tzinfo=UTC)


def history() -> Contacts:
    """Alice: 3 mails, 2 answered in 10 and 30 minutes; Bob at the same domain: 1, none."""
    mails = [
        received("alice@acme.example", 0, "<a1@x>"),
        reply("alice@acme.example", 10, "<a1@x>"),
        received("alice@acme.example", 100, "<a2@x>"),
        reply("alice@acme.example", 130, "<a2@x>"),
        received("alice@acme.example", 300, "<a3@x>"),
        received("bob@acme.example", 400, "<b1@x>"),
        replace(reply("carol@other.example", 500, "<elsewhere@x>"), message_id="<mine@x>"),
    ]
    social = SocialHistory.from_mails(mails, is_sent=is_sent, user_addresses={ME})
    return Contacts.from_history(social, {ME}, {"mine@x"}, login="me", now=NOW)


def live(sender: str, *, in_reply_to: tuple[str, ...] = ()) -> Mail:
    return replace(received(sender, 10_000, "<new@x>"), in_reply_to=in_reply_to)


def test_totals_per_sender_and_domain() -> None:
    contacts = history()
    alice = contacts.senders["alice@acme.example"]
    assert (alice.received, alice.replied, alice.median_reply_minutes) == (3, 2, 20.0)
    bob = contacts.senders["bob@acme.example"]
    assert (bob.received, bob.replied, bob.median_reply_minutes) == (1, 0, None)
    domain = contacts.domains["acme.example"]
    assert (domain.received, domain.replied) == (4, 2)


def test_live_mail_gets_the_features_training_gave_such_mail() -> None:
    mail = live("Alice@ACME.example")
    features = meta_features(Sample(mail, history().context(mail)))
    assert "sender mails before~1" in features  # 3 before: the 2..5 bucket
    assert "you replied to sender~4" in features  # 2 of 3
    assert "sender reply speed~1" in features  # median 20 min
    assert "new sender" not in features
    assert "to you" in features


def test_unknown_sender_at_a_known_domain() -> None:
    mail = live("dan@acme.example")
    features = meta_features(Sample(mail, history().context(mail)))
    assert "new sender" in features
    assert "domain mails before~1" in features
    assert "you replied to domain~3" in features  # 2 of 4


def test_a_reply_to_a_message_the_user_sent() -> None:
    mail = live("carol@other.example", in_reply_to=("<mine@x>",))
    assert history().context(mail).replies_to_user
    assert not history().context(live("carol@other.example")).replies_to_user


def test_save_and_load_round_trip_owner_only(tmp_path: Path) -> None:
    path = contacts_path(tmp_path / "models" / "urgency.skops")
    assert path.name == "urgency.contacts.json"
    history().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Contacts.load(path) == history()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "cannot read the contacts file"),
        ('{"format": 99}', "format 99, expected 1"),
        ('{"format": 1, "login": null}', "not a contacts file of this version"),
        ("[]", "not a contacts file of this version"),
    ],
)
def test_a_broken_file_is_refused_naming_it(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "urgency.contacts.json"
    path.write_text(text)
    with pytest.raises(ContactsError) as info:
        Contacts.load(path)
    assert str(path) in str(info.value)
    assert says in str(info.value)


def test_counts_must_be_whole_numbers(tmp_path: Path) -> None:
    path = tmp_path / "urgency.contacts.json"
    history().save(path)
    document = json.loads(path.read_text())
    document["senders"]["alice@acme.example"][0] = "3"
    path.write_text(json.dumps(document))
    with pytest.raises(ContactsError, match="not whole numbers"):
        Contacts.load(path)


class Recorder:
    """A classifier that records the samples it is given (the decider's only collaborator)."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def classify_then_explain(
        self, samples: Sequence[Sample], *, explain: bool = True, reasons_kept: int | None = None
    ) -> tuple[list[Verdict], Callable[[], None]]:
        self.samples += samples
        return [Verdict(label="normal", p_urgent=0.1, reasons=[]) for _ in samples], lambda: None


def test_model_decider_gives_live_mail_the_saved_history() -> None:
    recorder = Recorder()
    ModelDecider(recorder, frozenset({"me@work.example"}), history()).label(
        [live("alice@acme.example")]
    )
    context = recorder.samples[0].context
    assert context.sender is not None
    assert context.sender.replied == 2
    assert context.user_addresses == {ME, "me@work.example"}
    plain = Recorder()
    ModelDecider(plain, frozenset({ME})).label([live("alice@acme.example")])
    assert plain.samples[0].context.sender is None  # without contacts every sender is new
