"""An account's sla without a server: which held mail gets a limit, when, and what status says."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

from commsproxy.classifier.mail import parse_mail
from commsproxy.config import AccountConfig, AccountsConfig, TriageConfig, parse_config_text
from commsproxy.endpoints import parse_endpoint
from commsproxy.timespec import parse_when
from commsproxy.triage.engine_settings import EngineSettings
from commsproxy.triage.sla import SlaLimits, sla_words
from commsproxy.triage.state_store import Decision, SlaDue, StateStore
from commsproxy.triage.status_report import login_status

AT = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
ACME = AccountConfig(key="acme", name="Acme", domains=("acme.example",), sla=parse_when("1h"))
SLOW = AccountConfig(key="slow", name="Slow", addresses=("pat@gmail.com",), sla=parse_when("90m"))
OTHER = AccountConfig(key="other", name="Other", domains=("other.example",))


def settings(*accounts: AccountConfig) -> EngineSettings:
    return EngineSettings(
        login="me",
        endpoint=parse_endpoint("imap://127.0.0.1:1", "imap"),
        tls=ssl.create_default_context(),
        triage=TriageConfig(),
        batches=(),
        accounts=AccountsConfig(accounts=accounts),
    )


def arrival(sender: str, mid: str | None) -> tuple[object, Decision]:
    header = f"From: {sender}\r\nTo: me@example.com\r\nSubject: notes\r\n"
    if mid:
        header += f"Message-ID: {mid}\r\n"
    mail = parse_mail((header + "\r\nText.\r\n").encode())
    decision = Decision(
        login="me", mailbox="INBOX", uidvalidity=1, uid=1, message_id=mail.message_id,
        label="normal", score=None, reason="", batch="later", held=True, sender=mail.sender,
        subject=mail.subject, decided_at=AT,
    )  # fmt: skip
    return mail, decision


def test_sla_words() -> None:
    assert [sla_words(m) for m in (60, 90, 45, 120, 1)] == ["1h", "1h30m", "45m", "2h", "1m"]


def test_held_mail_of_an_account_with_an_sla_gets_its_limit(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        part = SlaLimits(settings(ACME, SLOW, OTHER), store)
        acme, slow, other = (
            arrival("anna@acme.example", "<a@x>"),
            arrival("pat@gmail.com", "<p@x>"),
            arrival("olaf@other.example", "<o@x>"),
        )
        no_id = arrival("bea@eu.acme.example", None)  # cannot be found again: no limit
        stranger = arrival("sam@elsewhere.example", "<s@x>")
        mail, decision = arrival("carl@acme.example", "<c@x>")
        urgent = (mail, Decision(**{**_fields(decision), "held": False, "batch": None}))
        pairs = [acme, slow, other, no_id, stranger, urgent]
        part.decided([m for m, _ in pairs], [d for _, d in pairs])  # type: ignore[misc]
        limits = store.sla_pending("me")
        assert [(x.message_id, x.account, x.sla, x.due) for x in limits] == [
            ("a@x", "Acme", "1h", AT + timedelta(hours=1)),
            ("p@x", "Slow", "1h30m", AT + timedelta(minutes=90)),
        ]
        assert part.next_due() == AT + timedelta(hours=1)
        # The same decision told twice (a redo) keeps one limit.
        part.decided([acme[0]], [acme[1]])  # type: ignore[list-item]
        assert len(store.sla_pending("me")) == 2


def test_no_account_with_an_sla_records_nothing(tmp_path: Path) -> None:
    with StateStore.open(tmp_path) as store:
        part = SlaLimits(settings(OTHER), store)
        mail, decision = arrival("olaf@other.example", "<o@x>")
        part.decided([mail], [decision])  # type: ignore[list-item]
        assert store.sla_pending("me") == []
        assert part.next_due() is None


def test_states_and_what_status_says(tmp_path: Path) -> None:
    config = parse_config_text(tmp_path / "config.toml", f'[proxy]\nstate_dir = "{tmp_path}"\n')
    with StateStore.open(tmp_path) as store:
        entry = SlaDue("me", "a@x", "later", "Acme", "1h", AT, AT + timedelta(hours=1))
        store.note_sla([entry, SlaDue("me", "b@x", "later", "Acme", "1h", AT, AT)])
        second, first = store.sla_pending("me")  # soonest first: b@x is due at AT
        assert (second.message_id, first.message_id) == ("b@x", "a@x")
        store.set_sla_state(first.id, "delivering", AT + timedelta(hours=1))
        assert [x.state for x in store.sla_pending("me")] == ["waiting", "delivering"]
        store.set_sla_state(first.id, "delivered", AT + timedelta(hours=1))
        store.set_sla_state(second.id, "released", AT)
        assert store.sla_pending("me") == []
        assert [x.message_id for x in store.sla_settled("me", "delivered", AT)] == ["a@x"]

        store.note_snoozed("me", "Snoozed/Tomorrow", "Tomorrow", 1, [(5, "<z@x>")], AT, AT)
        status = login_status(config, store, "me", AT + timedelta(hours=2))
        assert status["snoozed"] == {
            "count": 1,
            "next_return": AT.isoformat(),
            "sla_delivered_24h": 1,
        }


def _fields(decision: Decision) -> dict[str, object]:
    return {name: getattr(decision, name) for name in Decision.__slots__}
