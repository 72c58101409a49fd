"""The service gives each login's triage the contacts training saved beside the model."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commsproxy.classifier.contacts import Contacts
from commsproxy.classifier.mail import parse_mail
from commsproxy.classifier.social import SenderStats
from commsproxy.config import load_config
from commsproxy.models.store import bundled_model_path
from commsproxy.service import RunOptions, _load_model, plan

A, B = "me@a.example", "me@b.example"
MAIL = parse_mail(
    b"From: Ann <ann@customer.example>\r\nTo: me@a.example\r\nSubject: the contract\r\n"
    b"Message-ID: <c1@customer.example>\r\n\r\nCan you look at the contract?\r\n"
)


def start(tmp_path: Path, contacts: Contacts | str | None) -> dict[str, float | None]:
    """p(urgent) of MAIL for each login, the model copied to tmp_path with ``contacts``."""
    tmp_path.mkdir()
    model = tmp_path / "urgency.skops"
    bundled = bundled_model_path("urgency")
    shutil.copy(bundled, model)
    shutil.copy(bundled.with_suffix(".json"), model.with_suffix(".json"))
    beside = tmp_path / "urgency.contacts.json"
    if isinstance(contacts, Contacts):
        contacts.save(beside)
    elif isinstance(contacts, str):
        beside.write_text(contacts)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[triage]\nmodel = "{model}"\n'
        f'[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "{A}"\n'
        f'[[login]]\nupstream_imap = "imaps://b.example.com"\nusername = "{B}"\n'
    )
    the_plan = plan(load_config(config, required=True), RunOptions())
    assert the_plan.triage is not None
    decider_for = _load_model(the_plan.triage.config, the_plan.triage)
    return {login: decider_for(login).label([MAIL])[0].score for login in (A, B)}


def answered(login: str | None) -> Contacts:
    """Ann was answered 9 times of 10, in a median 12 minutes."""
    ann = SenderStats(10, 9, 12.0, None)
    return Contacts(
        login,
        datetime.now(UTC),
        frozenset({A}),
        {"ann@customer.example": ann},
        {"customer.example": ann},
        frozenset(),
    )


def test_contacts_read_from_a_login_serve_that_login_only(tmp_path: Path) -> None:
    without = start(tmp_path / "none", None)
    assert without[A] == without[B]
    scores = start(tmp_path / "a", answered(A))
    assert scores[B] == without[B]
    assert scores[A] is not None
    assert without[A] is not None
    assert scores[A] > without[A]  # a sender the user answers, and fast, is likelier urgent


def test_contacts_read_from_files_serve_every_login(tmp_path: Path) -> None:
    without = start(tmp_path / "none", None)
    scores = start(tmp_path / "files", answered(None))
    assert scores[A] == scores[B] != without[A]


def test_a_broken_contacts_file_is_named_and_triage_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "commsproxy")
    without = start(tmp_path / "none", None)
    assert start(tmp_path / "broken", "{not json") == without
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(tmp_path / "broken" / "urgency.contacts.json") in warning
    assert "without your history with senders" in warning
