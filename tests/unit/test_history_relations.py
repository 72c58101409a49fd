"""LiveHistory remembers each sender's relation and the user's addresses with the history's:
the same answers as the rules worked out afresh, and new ones as soon as an address joins."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier.mail import Mail
from commsproxy.config import AccountConfig, AccountsConfig
from commsproxy.triage import history as history_module
from commsproxy.triage.account_match import AccountRules
from commsproxy.triage.history import LiveHistory

ACCOUNTS = AccountsConfig(
    accounts=(
        AccountConfig("acme", "Acme", domains=("acme.example",), addresses=("x@gmail.com",)),
    ),
    internal_domains=("team.example",),
)
_LOCAL = st.sampled_from(["ann", "Bob", "x", "y", " eve "])
_DOMAIN = st.sampled_from(
    ["acme.example", "eu.acme.example", "ACME.example", "gmail.com", "team.example",
     "corp.example", "new.example", "elsewhere.example", "sub.new.example"]
)  # fmt: skip
_SENDER = st.builds(lambda local, domain: f"{local}@{domain}", _LOCAL, _DOMAIN)


def _fresh(history: LiveHistory, sender: str) -> str | None:
    rules = AccountRules(ACCOUNTS, sorted(history.user_addresses))
    if rules.is_internal(sender):
        return "colleague"
    return "customer" if rules.match(sender) is not None else None


def _from(sender: str, to: str) -> Mail:
    return Mail(None, (), (), None, sender, "", (to,), (), "hello", "text")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_SENDER, st.booleans()), max_size=30))
def test_same_relation_as_the_rules_afresh(steps: list[tuple[str, bool]]) -> None:
    history = LiveHistory(["me@corp.example"], accounts=ACCOUNTS)
    for sender, joins in steps:
        if joins:  # the user sends as this address: its domain becomes internal
            history.add_sent(_from(sender, "someone@else.example"), from_user=True)
        assert history.relation(sender) == _fresh(history, sender)


def test_an_address_that_joins_changes_the_answers_at_once() -> None:
    history = LiveHistory(["me@corp.example"], accounts=ACCOUNTS)
    asked = frozenset({"login@corp.example"})
    assert history.relation("bob@new.example") is None
    before = history.context(_from("bob@new.example", "me@corp.example"), asked)
    assert before.user_addresses == {"me@corp.example", "login@corp.example"}
    assert history.context(_from("c@x.example", "me@corp.example"), asked).user_addresses is (
        before.user_addresses
    )  # one union for the whole batch
    history.add_sent(_from("me@new.example", "ann@acme.example"), from_user=True)
    assert history.relation("bob@new.example") == "colleague"
    after = history.context(_from("bob@new.example", "me@corp.example"), asked)
    assert after.relation == "colleague"
    assert after.user_addresses == {"me@corp.example", "login@corp.example", "me@new.example"}


def test_the_remembered_senders_are_bounded() -> None:
    history = LiveHistory(["me@corp.example"], accounts=ACCOUNTS)
    limit = history_module.MAX_RELATIONS
    for i in range(limit + 10):
        assert history.relation(f"s{i}@acme.example") == "customer"
    relations = history._relations
    assert relations is not None
    assert len(relations._known) <= limit
