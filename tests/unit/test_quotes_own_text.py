"""own_text remembers recent bodies' own texts within a budget of characters, never more."""

from __future__ import annotations

from commsproxy.classifier import quotes
from commsproxy.classifier.quotes import OWN_TEXT_BUDGET, own_text

REPLY = "Can you call me today?\n\n-----Original Message-----\nFrom: a@b.com\nSent: now\nold\n"


def _uncached(body: str) -> str:
    return quotes._OwnText(0)(body)  # a budget of 0 remembers nothing


def test_the_same_text_cached_or_not() -> None:
    own_text.cache_clear()
    bodies = [REPLY, "> quoted\nmine\n", "plain\r\ntext", ""]
    first = [own_text(b) for b in bodies]
    again = [own_text(b) for b in bodies]
    assert first == again == [_uncached(b) for b in bodies]
    assert first[0] == "Can you call me today?\n"
    assert first[1] == "mine"


def test_a_long_run_holds_no_more_than_the_budget() -> None:
    own_text.cache_clear()
    body = "> quoted\n" + "x" * 20_000 + "\n"  # a quote to leave out: remembered
    for i in range(3 * OWN_TEXT_BUDGET // 20_000):  # thrice the budget's worth of bodies
        own_text(f"{i}\n{body}")
        assert own_text.held <= OWN_TEXT_BUDGET
    assert own_text.held > OWN_TEXT_BUDGET // 2  # it does remember the recent ones


def test_a_batch_is_remembered_between_judging_and_explaining() -> None:
    own_text.cache_clear()
    bodies = [f"note {i}: please call me back today\n" * 20 for i in range(500)]
    for body in bodies:
        own_text(body)
    held = own_text.held
    for body in bodies:  # the second reading finds every one: nothing new is held
        own_text(body)
    assert own_text.held == held


def test_a_body_over_the_budget_is_not_held() -> None:
    own_text.cache_clear()
    huge = "y" * (OWN_TEXT_BUDGET + 1)
    assert own_text(huge) == _uncached(huge)
    assert own_text.held == 0
