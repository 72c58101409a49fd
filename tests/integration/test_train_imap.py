"""`commsproxy train` the everyday way: the configured login's folders over IMAP, real Dovecot."""

from __future__ import annotations

import imaplib
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.classifier.contacts import Contacts
from commsproxy.cli import main
from commsproxy.models.store import load_model
from commsproxy.triage.state_store import Correction, StateStore
from tests.mailfactory import START, everyday_mail, render
from tests.testbed.dovecot import Dovecot


def _fill(conn: imaplib.IMAP4, accounts_root: str) -> None:
    for exchange in everyday_mail(60, every=timedelta(hours=3), tag=accounts_root):
        conn.append("INBOX", None, None, exchange.received)
        if exchange.reply is not None:
            conn.append("Sent", r"(\Seen)", None, exchange.reply)
    for account in ("Acme", "Globex"):
        folder = f"{accounts_root}/{account}"
        conn.create(folder)
        for i in range(12):
            headers = {
                "From": f"buyer@{account.lower()}.example",
                "To": "me@corp.example",
                "Subject": f"{account} order {i}",
                "Message-ID": f"<{account}{i}@ex>",
                "Date": format_datetime(START + timedelta(hours=i)),
            }
            conn.append(folder, None, None, render(headers, f"The {account} order {i}."))


def _config(
    tmp_path: Path, dovecot: Dovecot, user: str, password: str, accounts_root: str, head: str = ""
) -> Path:
    """A config for the login with its password behind password_command, never in the file."""
    (tmp_path / "pw").write_text(password + "\n")
    config = tmp_path / "config.toml"
    config.write_text(
        head + f'[[login]]\nupstream_imap = "imap://127.0.0.1:{dovecot.imap_port}"\n'
        f'username = "{user}"\npassword_command = "cat {tmp_path / "pw"}"\n'
        f'[accounts]\nroot = "{accounts_root}"\n'
    )
    return config


@pytest.fixture
def mailbox(
    dovecot: Dovecot, imap_user: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str, str]:
    """A user with 60 everyday messages (and replies in Sent) and two account folders."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    accounts_root = f"Public/T{uuid.uuid4().hex[:8]}"
    user, password = imap_user
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port) as conn:
        conn.login(user, password)
        _fill(conn, accounts_root)
    return user, password, accounts_root


def test_train_from_configured_login(
    dovecot: Dovecot, mailbox: tuple[str, str, str], tmp_path: Path
) -> None:
    user, password, accounts_root = mailbox
    config = _config(tmp_path, dovecot, user, password, accounts_root)
    result = CliRunner().invoke(main, ["train", "--config", str(config), "-q"])
    assert result.exit_code == 0, result.output
    assert "20 urgent, 20 normal, 20 bulk" in result.output
    assert "2 accounts" in result.output
    assert password not in result.output
    data = tmp_path / "data" / "commsproxy" / "models"
    _, urgency = load_model(data / "urgency.skops", expected_task="urgency")
    _, accounts = load_model(data / "accounts.skops", expected_task="accounts")
    assert urgency.training["counts"] == {"urgent": 20, "normal": 20, "bulk": 20}
    assert set(accounts.labels) == {"Acme", "Globex"}
    # Beside the model, the history live triage gives each sender: the boss was answered
    # every time, in 20 minutes; the newsletter never.
    contacts = Contacts.load(data / "urgency.contacts.json")
    assert contacts.login == user
    boss = contacts.senders["boss@acme.example"]
    assert (boss.received, boss.replied, boss.median_reply_minutes) == (20, 20, 20.0)
    assert contacts.senders["news@lists.example.org"].replied == 0
    assert f"r0@{accounts_root}" in contacts.sent_ids
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port) as conn:
        conn.login(user, password)
        conn.select("INBOX", readonly=True)
        assert conn.search(None, "UNSEEN")[1][0].split().__len__() == 60  # nothing marked read


def test_train_uses_triage_corrections(
    dovecot: Dovecot, mailbox: tuple[str, str, str], tmp_path: Path
) -> None:
    """Messages the user rescued from a hold mailbox train as urgent, whatever was derived."""
    user, password, accounts_root = mailbox
    state = tmp_path / "state"
    with StateStore.open(state) as store:
        for i in (1, 4):  # two of the newsletters
            store.record_correction(
                Correction(
                    login=user,
                    message_id=f"<m{i}@{accounts_root}>",
                    kind="rescue",
                    label="urgent",
                    previous="bulk",
                    sender="news@example.org",
                    subject="",
                    at=datetime.now(UTC),
                )
            )
    config = _config(
        tmp_path, dovecot, user, password, accounts_root, f'[proxy]\nstate_dir = "{state}"\n'
    )
    result = CliRunner().invoke(main, ["train", "--config", str(config), "-q"])
    assert result.exit_code == 0, result.output
    assert "22 urgent, 20 normal, 18 bulk" in result.output
    assert "2 labels from overrides" in result.output
