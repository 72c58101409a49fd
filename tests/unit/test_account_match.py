"""Which account a message is filed under: config rules first, the accounts model after.

Pure logic: ``Mail`` values built here or parsed from small messages, and a fake model that
records what it was asked, because *whether* the model is asked matters as much as its answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import pytest

from commsproxy.classifier.mail import Mail, parse_mail
from commsproxy.config import AccountConfig, AccountsConfig
from commsproxy.triage.account_match import (
    FREEMAIL,
    AccountGuesser,
    AccountRules,
    Filing,
    resolve_incoming,
    resolve_outgoing,
)

ACME = AccountConfig(key="acme", name="Acme Corp", domains=("acme.com",))
ACME_EU = AccountConfig(key="acme-eu", name="Acme Europe", domains=("eu.acme.com",))
# A customer on free mail, and a customer on its own domain, both listed by address too.
GLOBEX = AccountConfig(
    key="globex", name="Globex", domains=("globex.co.uk",), addresses=("hank@gmail.com",)
)
# Jane works at Acme but runs the Umbrella account: her exact address beats Acme's domain.
UMBRELLA = AccountConfig(key="umbrella", name="Umbrella", addresses=("jane@acme.com",))
# A config mistake the rules must survive: a free-mail domain listed as a customer's domain.
CARELESS = AccountConfig(key="careless", name="Careless", domains=("yahoo.com",))

CONFIG = AccountsConfig(
    accounts=(ACME, ACME_EU, GLOBEX, UMBRELLA, CARELESS),
    # gmail.com listed as internal must not make every gmail sender a colleague.
    internal_domains=("example.com", "gmail.com"),
)
# The login's own addresses: team.example.org becomes internal, gmail.com must not.
OWN = ("Me@Team.Example.org", "me.too@gmail.com", "not-an-address")


@pytest.fixture
def rules() -> AccountRules:
    return AccountRules(CONFIG, OWN)


def mail(
    sender: str = "",
    to: Iterable[str] = (),
    cc: Iterable[str] = (),
    subject: str = "",
) -> Mail:
    """A message with only the fields filing reads (addresses lower-case, as parse_mail gives)."""
    return Mail(
        message_id=None,
        in_reply_to=(),
        references=(),
        date=None,
        sender=sender,
        sender_name="",
        to=tuple(to),
        cc=tuple(cc),
        subject=subject,
        body="",
    )


class FakeGuesser:
    """The accounts model, answering by subject and recording each batch it was asked."""

    def __init__(self, answers: Mapping[str, tuple[str, float] | None] | None = None) -> None:
        self.answers = dict(answers or {})
        self.asked: list[list[str]] = []

    def guess(self, mails: Sequence[Mail]) -> list[tuple[str, float] | None]:
        self.asked.append([m.subject for m in mails])
        return [self.answers.get(m.subject) for m in mails]


def test_fake_guesser_is_an_account_guesser() -> None:
    """The fake must fit the protocol the product uses, or these tests prove nothing."""
    guesser: AccountGuesser = FakeGuesser({"a": ("Acme Corp", 0.9)})
    assert guesser.guess([mail(subject="a"), mail(subject="b")]) == [("Acme Corp", 0.9), None]


# -- AccountRules.match --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "account", "rule"),
    [
        ("wile@acme.com", "Acme Corp", "acme.com"),
        # Subdomains belong to the parent's account ...
        ("wile@sales.acme.com", "Acme Corp", "acme.com"),
        ("wile@a.b.sales.acme.com", "Acme Corp", "acme.com"),
        # ... unless a more specific domain is an account of its own.
        ("hans@eu.acme.com", "Acme Europe", "eu.acme.com"),
        ("hans@de.eu.acme.com", "Acme Europe", "eu.acme.com"),
        # An exact address beats its domain.
        ("jane@acme.com", "Umbrella", "jane@acme.com"),
        ("hank@gmail.com", "Globex", "hank@gmail.com"),
        ("boss@globex.co.uk", "Globex", "globex.co.uk"),
        # Addresses from headers arrive in any case and with stray whitespace.
        ("  Wile@ACME.Com ", "Acme Corp", "acme.com"),
        ("JANE@Acme.COM", "Umbrella", "jane@acme.com"),
        ("Hank@GMail.com", "Globex", "hank@gmail.com"),
    ],
)
def test_match_by_address_then_domain(
    rules: AccountRules, address: str, account: str, rule: str
) -> None:
    found = rules.match(address)
    assert found is not None
    assert (found[0].name, found[1]) == (account, rule)


@pytest.mark.parametrize(
    "address",
    [
        "",
        "   ",
        "no-at-sign",
        "x@notacme.com",  # a suffix that is not a whole label
        "x@acme.com.evil.net",  # acme.com as a prefix, not the domain
        "x@acme.co",
        "x@com",
        # One gmail customer does not make every gmail user a customer.
        "someone.else@gmail.com",
        # Nor does a free-mail domain listed as a customer's domain by mistake.
        "anyone@yahoo.com",
    ],
)
def test_no_match(rules: AccountRules, address: str) -> None:
    assert rules.match(address) is None


def test_freemail_covers_the_big_providers() -> None:
    """The free-mail list is what keeps a gmail customer from claiming all of gmail."""
    assert {"gmail.com", "outlook.com", "yahoo.com", "icloud.com", "gmx.de"} <= FREEMAIL
    assert "acme.com" not in FREEMAIL


def test_first_match_names_the_role_address_and_rule(rules: AccountRules) -> None:
    addresses = ["colleague@example.com", "nobody@unknown.org", "Boss@Sales.Acme.com"]
    assert rules.first_match(addresses, "to") == Filing(
        "Acme Corp", "to Boss@Sales.Acme.com (acme.com)"
    )
    assert rules.first_match(["nobody@unknown.org"], "from") is None
    assert rules.first_match([], "from") is None


# -- AccountRules.is_internal --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "internal"),
    [
        ("bob@example.com", True),
        ("Bob@EXAMPLE.com", True),
        ("bob@eu.example.com", True),  # the team's subdomains are the team's too
        (" bob@example.com ", True),
        ("me@team.example.org", True),  # the login's own domain
        ("colleague@team.example.org", True),
        ("colleague@sub.team.example.org", True),
        ("x@example.org", False),  # the parent of the login's domain is not implied
        ("bob@notexample.com", False),
        ("bob@example.com.evil.net", False),
        # Free mail is never internal: not by config, not by the login's own gmail address.
        ("me.too@gmail.com", False),
        ("anyone@gmail.com", False),
        ("wile@acme.com", False),
        ("", False),
    ],
)
def test_is_internal(rules: AccountRules, address: str, internal: bool) -> None:
    assert rules.is_internal(address) is internal


def test_without_own_addresses_only_the_configured_domains_are_internal() -> None:
    rules = AccountRules(CONFIG)
    assert rules.is_internal("bob@example.com")
    assert not rules.is_internal("colleague@team.example.org")


# -- resolve_incoming ----------------------------------------------------------------------------


def test_incoming_sender_rule_comes_first(rules: AccountRules) -> None:
    """A customer writing and copying another customer: the sender's account wins."""
    guesser = FakeGuesser()
    message = mail("wile@acme.com", to=["hank@gmail.com"], cc=["boss@globex.co.uk"])
    assert resolve_incoming([message], rules, guesser) == [
        Filing("Acme Corp", "from wile@acme.com (acme.com)")
    ]
    assert guesser.asked == []  # settled by the rules: no model call at all


def test_incoming_recipients_when_the_sender_is_unknown(rules: AccountRules) -> None:
    """To before Cc, in order; the first customer address names the account."""
    guesser = FakeGuesser()
    by_to = mail("x@unknown.org", to=["me@team.example.org", "hank@gmail.com"], cc=["w@acme.com"])
    by_cc = mail("x@unknown.org", to=["me@team.example.org"], cc=["nobody@x.org", "w@acme.com"])
    assert resolve_incoming([by_to, by_cc], rules, guesser) == [
        Filing("Globex", "to hank@gmail.com (hank@gmail.com)"),
        Filing("Acme Corp", "to w@acme.com (acme.com)"),
    ]
    assert guesser.asked == []


def test_internal_mail_is_filed_only_when_it_names_a_customer(rules: AccountRules) -> None:
    guesser = FakeGuesser({"chat": ("Acme Corp", 0.99), "about acme": ("Globex", 0.99)})
    chat = mail("bob@example.com", to=["me@team.example.org"], subject="chat")
    about = mail(
        "bob@eu.example.com",
        to=["me@team.example.org"],
        cc=["wile@acme.com"],
        subject="about acme",
    )
    assert resolve_incoming([chat, about], rules, guesser) == [
        None,
        Filing("Acme Corp", "to wile@acme.com (acme.com)"),
    ]
    # Colleagues' chat is never the model's to guess, however sure it would be.
    assert guesser.asked == []


def test_internal_by_the_logins_own_domain_is_not_guessed(rules: AccountRules) -> None:
    guesser = FakeGuesser({"x": ("Acme Corp", 0.99)})
    message = mail("colleague@team.example.org", to=["me@team.example.org"], subject="x")
    assert resolve_incoming([message], rules, guesser) == [None]
    assert guesser.asked == []


def test_mail_without_a_sender_is_not_guessed(rules: AccountRules) -> None:
    guesser = FakeGuesser({"anon": ("Acme Corp", 0.99), "anon to hank": ("Acme Corp", 0.99)})
    anonymous = mail("", to=["me@team.example.org"], subject="anon")
    # Without a sender, the recipients rule still applies.
    to_customer = mail("", to=["hank@gmail.com"], subject="anon to hank")
    assert resolve_incoming([anonymous, to_customer], rules, guesser) == [
        None,
        Filing("Globex", "to hank@gmail.com (hank@gmail.com)"),
    ]
    assert guesser.asked == []


def test_outsiders_unsettled_mail_goes_to_the_model_in_one_batch(rules: AccountRules) -> None:
    """Only the outsiders' unsettled messages are asked, once, in order; answers go back to
    the right messages."""
    guesser = FakeGuesser({"order 7": ("Acme Corp", 0.8765), "spam": None})
    mails = [
        mail("wile@acme.com", subject="from acme"),  # rule
        mail("stranger@unknown.org", to=["me@team.example.org"], subject="order 7"),  # model
        mail("bob@example.com", subject="internal"),  # never asked
        mail("someone.else@gmail.com", subject="spam"),  # model, no answer
        mail("", subject="no sender"),  # never asked
    ]
    assert resolve_incoming(mails, rules, guesser) == [
        Filing("Acme Corp", "from wile@acme.com (acme.com)"),
        Filing("Acme Corp", "accounts model, confidence 0.88"),
        None,
        None,
        None,
    ]
    assert guesser.asked == [["order 7", "spam"]]


def test_a_free_mail_sender_is_an_outsider_even_if_a_colleague_uses_free_mail(
    rules: AccountRules,
) -> None:
    """The login's own gmail address must not hide every gmail sender from the model."""
    guesser = FakeGuesser({"hello": ("Globex", 0.7)})
    message = mail("random@gmail.com", to=["me.too@gmail.com"], subject="hello")
    assert resolve_incoming([message], rules, guesser) == [
        Filing("Globex", "accounts model, confidence 0.70")
    ]
    assert guesser.asked == [["hello"]]


def test_incoming_without_a_model(rules: AccountRules) -> None:
    mails = [mail("stranger@unknown.org", subject="?"), mail("wile@acme.com")]
    assert resolve_incoming(mails, rules, None) == [
        None,
        Filing("Acme Corp", "from wile@acme.com (acme.com)"),
    ]


def test_incoming_of_nothing(rules: AccountRules) -> None:
    guesser = FakeGuesser()
    assert resolve_incoming([], rules, guesser) == []
    assert guesser.asked == []


def test_incoming_from_parsed_mail(rules: AccountRules) -> None:
    """Real headers: display names, angle brackets and mixed case reach the rules as parsed."""
    raw = (
        b"From: Wile E. Coyote <Wile@Sales.ACME.com>\r\n"
        b"To: Me <me@team.example.org>\r\n"
        b'Cc: "Hank" <Hank@GMail.com>\r\n'
        b"Subject: Order\r\n"
        b"Message-ID: <order-1@acme.com>\r\n"
        b"\r\n"
        b"Please send 40 rockets.\r\n"
    )
    forwarded = (
        b"From: Bob <bob@example.com>\r\n"
        b"To: me@team.example.org\r\n"
        b"Cc: Hank <HANK@gmail.com>, jane@ACME.com\r\n"
        b"Subject: Fwd: Order\r\n"
        b"\r\n"
        b"See below.\r\n"
    )
    guesser = FakeGuesser()
    assert resolve_incoming([parse_mail(raw), parse_mail(forwarded)], rules, guesser) == [
        Filing("Acme Corp", "from wile@sales.acme.com (acme.com)"),
        Filing("Globex", "to hank@gmail.com (hank@gmail.com)"),
    ]
    assert guesser.asked == []


# -- resolve_outgoing ----------------------------------------------------------------------------


def test_outgoing_first_customer_among_to_cc_and_envelope(rules: AccountRules) -> None:
    guesser = FakeGuesser({"s": ("Umbrella", 0.99)})
    to_first = mail(
        "me@team.example.org", to=["bob@example.com", "boss@globex.co.uk"], cc=["w@acme.com"]
    )
    cc_next = mail("me@team.example.org", to=["bob@example.com"], cc=["w@acme.com"], subject="s")
    assert resolve_outgoing(to_first, ["w@acme.com"], rules, guesser) == Filing(
        "Globex", "to boss@globex.co.uk (globex.co.uk)"
    )
    assert resolve_outgoing(cc_next, [], rules, guesser) == Filing(
        "Acme Corp", "to w@acme.com (acme.com)"
    )
    assert guesser.asked == []


def test_outgoing_bcc_customer_from_the_envelope(rules: AccountRules) -> None:
    """A customer only in Bcc appears only among the SMTP envelope recipients."""
    guesser = FakeGuesser({"bcc": ("Acme Corp", 0.99)})
    message = mail("me@team.example.org", to=["bob@example.com"], subject="bcc")
    filing = resolve_outgoing(message, ["bob@example.com", "HANK@Gmail.com"], rules, guesser)
    assert filing == Filing("Globex", "to hank@gmail.com (hank@gmail.com)")
    assert guesser.asked == []


def test_outgoing_to_an_outsider_asks_the_model(rules: AccountRules) -> None:
    guesser = FakeGuesser({"quote": ("Acme Corp", 0.912)})
    message = mail("me@team.example.org", to=["buyer@unknown.org"], subject="quote")
    assert resolve_outgoing(message, ["buyer@unknown.org"], rules, guesser) == Filing(
        "Acme Corp", "accounts model, confidence 0.91"
    )
    assert guesser.asked == [["quote"]]


def test_outgoing_outsider_only_in_the_envelope_asks_the_model(rules: AccountRules) -> None:
    guesser = FakeGuesser({"hidden": None})
    message = mail("me@team.example.org", to=["bob@example.com"], subject="hidden")
    assert resolve_outgoing(message, ["bob@example.com", "x@unknown.org"], rules, guesser) is None
    assert guesser.asked == [["hidden"]]


def test_outgoing_to_colleagues_only_is_not_guessed(rules: AccountRules) -> None:
    guesser = FakeGuesser({"lunch": ("Acme Corp", 0.99)})
    message = mail(
        "me@team.example.org",
        to=["bob@example.com"],
        cc=["colleague@eu.example.com"],
        subject="lunch",
    )
    envelope = ["Bob@Example.com", "colleague@eu.example.com", "me@team.example.org"]
    assert resolve_outgoing(message, envelope, rules, guesser) is None
    assert resolve_outgoing(message, [], rules, guesser) is None
    assert guesser.asked == []


def test_outgoing_without_recipients_is_not_guessed(rules: AccountRules) -> None:
    guesser = FakeGuesser({"": ("Acme Corp", 0.99)})
    assert resolve_outgoing(mail("me@team.example.org"), [], rules, guesser) is None
    assert guesser.asked == []


def test_outgoing_without_a_model(rules: AccountRules) -> None:
    message = mail("me@team.example.org", to=["buyer@unknown.org"])
    assert resolve_outgoing(message, ["buyer@unknown.org"], rules, None) is None
