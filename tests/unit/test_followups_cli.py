"""``commsproxy followups`` and the store's follow-ups: waiting, answered, returned, once each."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.cli import main
from commsproxy.triage.followup_report import when_words
from commsproxy.triage.state_store import FollowUp, StateStore

CONFIG = """\
[proxy]
state_dir = "{state}"

[[login]]
username = "me@example.com"
upstream_imap = "imaps://imap.example.com"
"""
SENT = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def followup(mid: str, subject: str, to: tuple[str, ...], days: int = 3) -> FollowUp:
    return FollowUp("me@example.com", f"<{mid}>", to, subject, SENT, SENT + timedelta(days=days),
                    "waiting")  # fmt: skip


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(state=tmp_path / "state"), encoding="utf-8")
    return path


def fill(state: Path) -> None:
    with StateStore.open(state) as store:
        assert store.watch_followup(followup("a@x", "Offer", ("bob@customer.example",), 5))
        assert store.watch_followup(followup("b@x", "Question", ("carl@c.example",)))
        assert not store.watch_followup(followup("b@x", "Question again", ("x@c.example",)))
        assert store.watch_followup(followup("c@x", "Invoice", ("a@c.example", "b@c.example",
                                                                "d@c.example")))  # fmt: skip
        store.watch_followup(followup("d@x", "Thanks", ("gina@c.example",)))
        store.followup_state("me@example.com", "d@x", "cancelled")
        assert store.followup_answered("me@example.com", "b@x", "carl@c.example", SENT)
        assert not store.followup_answered("me@example.com", "b@x", "carl@c.example", SENT)
        assert not store.followup_answered("me@example.com", "d@x", "gina@c.example", SENT)
        store.followup_state("me@example.com", "c@x", "returning")
        later = SENT + timedelta(days=3)
        store.followup_state("me@example.com", "c@x", "returned", later)
        assert [f.message_id for f in store.followups_returned_since("me@example.com", SENT)] == [
            "c@x"
        ]


def test_no_state_file_yet(config: Path) -> None:
    result = CliRunner().invoke(main, ["followups", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "No state file yet" in result.output


def test_waiting_ones_and_all(config: Path, tmp_path: Path) -> None:
    fill(tmp_path / "state")
    runner = CliRunner()
    result = runner.invoke(main, ["followups", "--config", str(config)], env={"TZ": "UTC"})
    assert result.exit_code == 0, result.output
    now = datetime.now(UTC)
    sent, due = (when_words(t, UTC, now) for t in (SENT, SENT + timedelta(days=5)))
    assert result.output == (
        "me@example.com: 1 waiting for an answer\n"
        f"  Offer: to bob@customer.example, sent {sent}; back in INBOX {due} without an answer\n"
    )
    assert sent == "Fri 04 Dec 09:00" or sent.endswith("2026 09:00")
    everything = runner.invoke(main, ["followups", "--all", "--config", str(config)])
    lines = everything.output.splitlines()
    assert lines[0] == "me@example.com: 1 waiting for an answer"
    assert lines[1].startswith("  Offer: to bob@customer.example, sent ")
    assert "answered by carl@c.example" in everything.output
    assert "Invoice: to a@c.example and 2 more, sent " in everything.output
    assert "no answer: back in INBOX" in everything.output
    assert "Thanks: to gina@c.example, sent" in everything.output
    assert everything.output.rstrip().endswith("not watched")
    as_json = json.loads(
        runner.invoke(main, ["followups", "--all", "--json", "--config", str(config)]).output
    )
    rows = {r["message_id"]: r for r in as_json["logins"]["me@example.com"]}
    assert rows["a@x"]["state"] == "waiting"
    assert rows["a@x"]["due"] == (SENT + timedelta(days=5)).isoformat()
    assert rows["b@x"]["answered_by"] == "carl@c.example"
    assert rows["c@x"]["returned"] == (SENT + timedelta(days=3)).isoformat()
    assert rows["d@x"]["due"] is None
    only_waiting = json.loads(runner.invoke(main, ["followups", "--json", "--config",
                                                   str(config)]).output)  # fmt: skip
    assert [r["message_id"] for r in only_waiting["logins"]["me@example.com"]] == ["a@x"]
