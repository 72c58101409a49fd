"""The service gives each login's decider its live history, training's contacts until then."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from commsproxy.classifier.contacts import Contacts
from commsproxy.classifier.mail import parse_mail
from commsproxy.config import load_config
from commsproxy.models.store import bundled_model_path
from commsproxy.service import RunOptions, _start_triage, plan
from commsproxy.triage.decide import ModelDecider, RuleDecider
from commsproxy.triage.history import LiveHistory
from commsproxy.triage.hub import TriageHub

from .test_service_contacts import MAIL, A, B, answered


@contextmanager
def hub_for(tmp_path: Path, triage: str = "") -> Iterator[TriageHub]:
    """Two logins, the model with contacts read from login A beside it; stopped after."""
    model = tmp_path / "urgency.skops"
    bundled = bundled_model_path("urgency")
    shutil.copy(bundled, model)
    shutil.copy(bundled.with_suffix(".json"), model.with_suffix(".json"))
    answered(A).save(tmp_path / "urgency.contacts.json")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[proxy]\nstate_dir = "{tmp_path / "state"}"\n'
        f'[triage]\nmodel = "{model}"\n{triage}'
        f'[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "{A}"\n'
        f'[[login]]\nupstream_imap = "imaps://b.example.com"\nusername = "{B}"\n'
        '[accounts.customer]\nname = "Customer"\ndomains = ["customer.example"]\n'
    )
    the_plan = plan(load_config(config, required=True), RunOptions())
    assert the_plan.triage is not None
    with ExitStack() as held:
        yield _start_triage(the_plan.triage, held)


def model_of(hub: TriageHub, login: str) -> ModelDecider:
    decider = hub.engines[login].decider
    assert isinstance(decider, RuleDecider)
    assert isinstance(decider.fallback, ModelDecider)
    return decider.fallback


def test_each_login_gets_its_live_history_with_training_contacts_until_it_is_known(
    tmp_path: Path,
) -> None:
    with hub_for(tmp_path) as hub:
        for login in (A, B):
            keeper = hub.engines[login].history
            assert keeper is not None
            history = model_of(hub, login).history
            assert history is keeper.history
            assert isinstance(history, LiveHistory)
            assert history.user_addresses == {login}
            assert history.context(MAIL, frozenset()).relation == "customer"
        a, b = (model_of(hub, login).history for login in (A, B))
        assert isinstance(a, LiveHistory)
        assert isinstance(b, LiveHistory)
        assert isinstance(a.fallback, Contacts)  # read from login A: A's until the live one
        assert b.fallback is None  # B's mail is scored cold until its history is read
        assert a.context(MAIL, frozenset()).sender is not None
        assert not b.context(MAIL, frozenset()).history_known
        a.known = True
        assert a.context(MAIL, frozenset()).sender == a.sender_stats("ann@customer.example")


def test_history_seconds_zero_keeps_the_training_contacts_alone(tmp_path: Path) -> None:
    with hub_for(tmp_path, "history_seconds = 0\n") as hub:
        assert hub.engines[A].history is None
        assert isinstance(model_of(hub, A).history, Contacts)
        assert model_of(hub, B).history is None


def test_the_decider_scores_with_the_live_history(tmp_path: Path) -> None:
    """Login B has no trained contacts: cold until its live history is known, then warm."""
    login = B
    with hub_for(tmp_path) as hub:
        [decision] = model_of(hub, login).label([MAIL])
        assert decision.score is not None
        history = model_of(hub, login).history
        assert isinstance(history, LiveHistory)
        history.known = True
        for i in range(5):  # Ann answered within minutes, five times
            received = parse_mail(
                f"From: ann@customer.example\r\nTo: {login}\r\nSubject: q{i}\r\n"
                f"Message-ID: <q{i}@c>\r\nDate: Mon, 4 May 2026 09:0{i}:00 +0000\r\n"
                "\r\nx\r\n".encode()
            )
            history.add_received(received)
            history.add_sent(
                parse_mail(
                    f"From: {login}\r\nTo: ann@customer.example\r\nSubject: Re: q{i}\r\n"
                    f"Message-ID: <r{i}@c>\r\nIn-Reply-To: <q{i}@c>\r\n"
                    f"Date: Mon, 4 May 2026 09:1{i}:00 +0000\r\n\r\nok\r\n".encode()
                )
            )
        [warm] = model_of(hub, login).label([MAIL])
        assert warm.score is not None
        assert warm.score > decision.score  # someone the user answers, and fast
