"""The user's aliases: their name at their own domain, seen on mail that names no known address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from commsproxy.classifier.aliases import aliases_of, find_aliases, is_alias
from commsproxy.classifier.features import Context, Sample, meta_features
from commsproxy.classifier.labels import derive_labels
from commsproxy.classifier.mail import Mail
from commsproxy.triage.history import LiveHistory

ME = "martin.cuilla@corp.example"
T0 = datetime(2001, 3, 2, 9, 0, tzinfo=UTC)


def mail(
    sender: str,
    to: tuple[str, ...],
    minutes: float = 0,
    *,
    cc: tuple[str, ...] = (),
    folder: str = "inbox",
) -> Mail:
    return Mail(
        message_id=f"<{sender}-{minutes}@x>",
        in_reply_to=(),
        references=(),
        date=T0 + timedelta(minutes=minutes),
        sender=sender,
        sender_name="",
        to=to,
        cc=cc,
        subject=f"about {minutes}",
        body="hello",
        folder=folder,
    )


@pytest.mark.parametrize(
    "address",
    [
        "mcuilla@corp.example",  # initial and surname run together
        "m.cuilla@corp.example",
        "martin_cuilla@corp.example",
        "martincuilla@corp.example",
        "cuilla.martin@corp.example",
        "cuillam@corp.example",
        "m..cuilla@corp.example",  # Enron's middle-initial form
        "mcuilla@ect.corp.example",  # a subdomain of the user's
    ],
)
def test_the_users_name_at_their_domain_is_an_alias(address: str) -> None:
    assert is_alias(address, {ME})


@pytest.mark.parametrize(
    "address",
    [
        "mcuilla@houston.example",  # another domain: anyone's
        "mcuilla@gmail.com",  # a free mail provider: someone else's account
        "john.cuilla@corp.example",  # another first name: a relative, a namesake
        "tcuilla@corp.example",
        "martin.smith@corp.example",
        "cuilla@corp.example",  # the surname alone names no one in particular
        ME,  # already known
        "not an address",
    ],
)
def test_anything_else_is_not(address: str) -> None:
    assert not is_alias(address, {ME})


def test_a_user_address_without_first_name_and_surname_spells_no_alias() -> None:
    assert not is_alias("jbo@corp.example", {"jo@corp.example"})
    assert not is_alias("dfossum@corp.example", {"fossum@corp.example"})


def test_only_mail_that_names_no_known_address_shows_an_alias() -> None:
    # A namesake colleague is named beside the user on the mail they share.
    shared = mail("ann@corp.example", (ME, "m.cuilla@corp.example"))
    assert aliases_of(shared.to, shared.cc, {ME}) == []
    alone = mail("ann@corp.example", ("mcuilla@corp.example",), cc=("bob@corp.example",))
    assert aliases_of(alone.to, alone.cc, {ME}) == ["mcuilla@corp.example"]
    assert find_aliases({ME}, [shared, alone]) == {"mcuilla@corp.example"}
    assert find_aliases(set(), [alone]) == frozenset()


def test_labels_count_mail_to_an_alias_as_addressed_to_the_user() -> None:
    mails = [
        mail(ME, ("ann@corp.example",), 0, folder="sent_items"),
        mail("ann@corp.example", ("mcuilla@corp.example",), 10),
        mail("mcuilla@corp.example", ("ann@corp.example",), 20),  # from the alias: received
    ]
    result = derive_labels(mails, is_sent=lambda m: m.folder == "sent_items", rebuild=False)
    assert result.user_addresses == {ME, "mcuilla@corp.example"}
    assert result.sent == 1
    assert result.received == 2
    to_alias = next(i.mail for i in result.labelled if i.mail.sender == "ann@corp.example")
    features = meta_features(Sample(to_alias, Context(user_addresses=result.user_addresses)))
    assert "to you" in features
    assert "not addressed to you" not in features


def test_live_history_learns_aliases_at_its_first_read_and_from_new_mail() -> None:
    history = LiveHistory([ME])
    history.absorb(
        [
            mail(ME, ("ann@corp.example",), 0, folder="Sent"),
            mail("ann@corp.example", ("mcuilla@corp.example",), 10),
        ],
        is_sent=lambda m: m.folder == "Sent",
    )
    assert history.user_addresses == {ME, "mcuilla@corp.example"}
    history.add_received(mail("bob@corp.example", ("m.cuilla@ect.corp.example",), 30))
    assert "m.cuilla@ect.corp.example" in history.user_addresses
    # Saved and loaded with the rest of the history.
    again = LiveHistory([ME])
    again.load_document(history.to_document())
    assert again.user_addresses == history.user_addresses
