"""Triage is right from the first minute: a new login's first start, and a thin ``train``.

Against the real Dovecot. The first part fills a realistic mailbox (replies in Sent to two
customers and a colleague, the older mail they answer in INBOX and Archive, newsletters and a
little spam), starts ``commsproxy run`` with the bundled model and no ``train``, and delivers
the day's first mail: what is urgent by its words or headers stays in INBOX, a newsletter waits
in Later/Bulk and a customer's FYI should wait in Later (a person's mail is never bulk without
evidence). The second trains on a mailbox with only three urgent examples: the bundled model is
kept, and ``train`` says so, rather than saving a model of too little mail that holds nothing.

One promise does not hold yet and is a strict xfail (PERSON_MAIL_IS_URGENT): the bundled model
calls a person's ordinary mail urgent whatever it says, so the FYI is delivered at once.
"""

from __future__ import annotations

import imaplib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from commsproxy.cli import main
from commsproxy.models.store import load_bundled, load_model
from tests.mailfactory import START, render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import (
    flags_by_id,
    quiet_batches,
    triage_proxy,
    wait_until,
    where,
    write_triage_config,
)

ME = "me@corp.example"
CARLA = "Carla Buyer <carla@acme.example>"  # customer, [accounts.acme]
DAN = "Dan Ops <dan@globex.example>"  # customer, [accounts.globex]
BOB = "Bob Lee <bob@corp.example>"  # colleague, the user's own domain
NEWS = "Tech Weekly <news@updates.example>"
NOW = datetime.now(UTC).replace(microsecond=0)


def _accounts(root: str) -> str:
    """``[accounts]`` with a root no other test files into, the team's domain and 2 customers."""
    return f"""
[accounts]
root = "{root}"
internal_domains = ["corp.example"]
[accounts.acme]
name = "Acme"
domains = ["acme.example"]
[accounts.globex]
name = "Globex"
domains = ["globex.example"]
"""


def _address(who: str) -> str:
    return who.partition("<")[2].rstrip(">") or who


def _received(
    mid: str, sender: str, subject: str, body: str, when: datetime, **extra: str
) -> bytes:
    headers = {"From": sender, "To": ME, "Subject": subject, "Message-ID": mid}
    return render(headers | {"Date": format_datetime(when)} | extra, body)


def _reply(mid: str, to: str, parent: str, subject: str, when: datetime) -> bytes:
    headers = {"From": f"Me <{ME}>", "To": to, "Subject": f"Re: {subject}", "Message-ID": mid}
    headers |= {"In-Reply-To": parent, "References": parent, "Date": format_datetime(when)}
    return render(headers, "Thanks, on it.\r\n\r\nMe")


def _newsletter(mid: str, subject: str, when: datetime) -> bytes:
    return _received(
        mid, NEWS, subject, "This week: five articles, two events and a webinar. Read more online.",
        when,
        **{"List-Id": "<weekly.updates.example>",
           "List-Unsubscribe": "<mailto:leave@updates.example>, <https://updates.example/u>"},
    )  # fmt: skip


# --- 1. the first start of a new login, bundled model, no train ------------------------------


@dataclass(frozen=True)
class FirstDay:
    """The day's first new mail, by what the user would call it."""

    order_down: str  # (a) a customer: "our order system is down, can you call me asap?"
    q3_numbers: str  # (b) a colleague's same-day request
    server_down: str  # (c) "URGENT: server down", X-Priority: 1, Importance: high
    newsletter: str  # (d) List-Unsubscribe
    fyi: str  # (e) a customer's FYI, nothing urgent


def _fill_history(conn: imaplib.IMAP4) -> int:
    """Weeks of mail, all read: returns how many messages the folders hold.

    Carla (Acme) and Dan (Globex) wrote 4 times each and Bob (colleague) 3 times; the user
    answered most of it within the hour. Half the older mail is archived.
    """
    conn.create("Archive")
    count = 0
    people = ((CARLA, "acme", 4, 1), (DAN, "globex", 4, 2), (BOB, "corp", 3, 3))
    for who, tag, times, hour in people:
        for i in range(times):
            at = NOW - timedelta(days=20 - 5 * i, hours=hour)
            mid, subject = f"<{tag}{i}@{tag}.example>", f"{tag} question {i}"
            body = f"Hi, a question about item {i} of our last order. Could you check it?"
            folder = "Archive" if i % 2 else "INBOX"
            conn.append(folder, r"(\Seen)", None, _received(mid, who, subject, body, at))
            count += 1
            if i != 1:  # one of each left unanswered
                minutes = 15 + 10 * i
                sent = _reply(f"<r{tag}{i}@corp.example>", _address(who), mid, subject,
                              at + timedelta(minutes=minutes))  # fmt: skip
                conn.append("Sent", r"(\Seen)", None, sent)
                count += 1
    for i in range(4):
        at = NOW - timedelta(days=28 - 7 * i)
        conn.append("INBOX", r"(\Seen)", None, _newsletter(f"<n{i}@updates.example>",
                    f"Tech Weekly #{i}", at))  # fmt: skip
        count += 1
    spam = (
        ("Prize Desk <winner@lucky-prize.example>", "You have WON a FREE iPhone!!!",
         "Claim your FREE prize now! Click here, offer expires today. 100% free, no risk!"),
        ("Security <verify@account-check.example>", "Your account will be suspended",
         "Dear customer, verify your password now or your account will be suspended."),
    )  # fmt: skip
    for i, (sender, subject, body) in enumerate(spam):
        conn.append("INBOX", r"(\Seen)", None,
                    _received(f"<s{i}@spam.example>", sender, subject, body,
                              NOW - timedelta(days=3 + i)))  # fmt: skip
        count += 1
    return count


def _first_day_mail(token: str) -> tuple[FirstDay, list[bytes]]:
    ids = FirstDay(*(f"<{name}.{token}@first-day.example>" for name in "abcde"))
    at = NOW
    mails = [
        _received(ids.order_down, CARLA, "Order system",
                  "Hi,\r\n\r\nour order system is down, can you call me asap?\r\n\r\nCarla", at),
        _received(ids.q3_numbers, BOB, "Q3 numbers",
                  "Hi,\r\n\r\nneed the Q3 numbers before the 2pm call.\r\n\r\nBob", at),
        _received(ids.server_down, DAN, "URGENT: server down, customer waiting",
                  "Our server is down and a customer is waiting on the line. Please help.", at,
                  **{"X-Priority": "1", "Importance": "high"}),
        _newsletter(ids.newsletter, "Tech Weekly #4", at),
        _received(ids.fyi, CARLA, "FYI: new delivery address",
                  "Hi,\r\n\r\njust so you know, from next month our deliveries go to the new "
                  "warehouse in Lindenstraat 12. Nothing to do on your side.\r\n\r\nCarla", at),
    ]  # fmt: skip
    return ids, mails


@dataclass(frozen=True)
class FirstStart:
    """What one first start did with the day's first mail, as the tests below read it."""

    ids: FirstDay
    places: dict[str, str | None]  # FirstDay field -> the mailbox it ended in
    decisions: list[str]  # the proxy's decision lines, to show when an assertion fails
    explain: str  # `commsproxy explain` of (a)
    explain_json: dict[str, Any]
    status: dict[str, Any]  # `commsproxy status --json`, the login's entry
    status_text: str
    history_ready: bool  # the proxy logged that the live history was read
    mailbox_size: int  # messages in the folders before the first start


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commsproxy", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "COMMSPROXY_CONFIG": "/nonexistent/commsproxy.toml"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def first_start(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstStart]:
    """A new login's first ``run`` (bundled model, no train) and the day's first five messages.

    Run once for the module: each test below checks one promise about the same start.
    """
    user, password = dovecot.new_user()
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=30) as conn:
        conn.login(user, password)
        size = _fill_history(conn)
    config = write_triage_config(
        dovecot, user, password, tmp_path_factory.mktemp("first-day") / "commsproxy",
        batches=quiet_batches(),
        tables=_accounts(f"Public/F{uuid.uuid4().hex[:8]}"),
    )  # fmt: skip
    proxy = triage_proxy(config)
    try:
        history_ready = proxy.wait_for_log(r"history\[[^\]]+\]: ready", 30)
        ids, mails = _first_day_mail(uuid.uuid4().hex[:10])
        for mail in mails:
            dovecot.deliver(user, mail)
        wanted = vars(ids)

        def triaged() -> bool:
            flags = flags_by_id(dovecot, user)
            return all(mid in flags and "$Triaged" in flags[mid][1] for mid in wanted.values())

        assert wait_until(triaged, 30), proxy.log_text()
        places = where(dovecot, user)
        explained = _cli(config, "explain", ids.order_down)
        assert explained.returncode == 0, explained.stderr
        status = _cli(config, "status", "--json")
        assert status.returncode == 0, status.stderr
        (login,) = json.loads(status.stdout)["logins"]
        yield FirstStart(
            ids=ids,
            places={name: places.get(mid) for name, mid in wanted.items()},
            decisions=[line for line in proxy.lines() if re.search(r"triage\[.*: uid \d+ ", line)],
            explain=explained.stdout,
            explain_json=json.loads(_cli(config, "explain", ids.order_down, "--json").stdout),
            status=login,
            status_text=_cli(config, "status").stdout,
            history_ready=history_ready,
            mailbox_size=size,
        )
    finally:
        proxy.stop()
    assert "Traceback" not in proxy.log_text(), proxy.log_text()


def _shown(start: FirstStart) -> str:
    return "\n".join([str(start.places), *start.decisions])


def test_urgent_mail_is_delivered_at_once(first_start: FirstStart) -> None:
    """(a) a customer's "system is down, call me asap", (b) a colleague's "before the 2pm
    call", (c) "URGENT: server down" with X-Priority 1 and Importance high."""
    places = first_start.places
    assert (places["order_down"], places["q3_numbers"], places["server_down"]) == (
        "INBOX", "INBOX", "INBOX"
    ), _shown(first_start)  # fmt: skip


def test_newsletter_waits_in_bulk_and_a_person_never_does(first_start: FirstStart) -> None:
    assert first_start.places["newsletter"] == "Later/Bulk", _shown(first_start)
    assert first_start.places["fyi"] != "Later/Bulk", _shown(first_start)


# Found while writing these tests: the bundled model (default-urgency.skops, cuts 0.071 with
# the history, 0.057 without) scores one-to-one mail from a person above its cuts whatever the
# text says, unless the user never answered that sender.
PERSON_MAIL_IS_URGENT = (
    "the bundled model calls a person's ordinary mail urgent: Carla's FYI scores p(urgent) 0.25 "
    "with the live history (cut 0.071) and 0.130 cold (cut 0.057), the same as her 'call me "
    "asap' (0.25, 0.129); only a sender never answered, or a stranger once the history is "
    "read, scores below the cuts"
)


@pytest.mark.xfail(strict=True, reason=PERSON_MAIL_IS_URGENT)
def test_customer_fyi_waits_in_later(first_start: FirstStart) -> None:
    """(e) a customer's FYI: normal, held in Later (not Bulk: it is a person's mail)."""
    assert first_start.places["fyi"] == "Later", _shown(first_start)


def test_explain_says_why_in_words(first_start: FirstStart) -> None:
    """The label, its score against the cut, then the reasons: no feature names."""
    text = first_start.explain
    assert "delivered to INBOX at once" in text, text
    why = next(line.strip() for line in text.splitlines() if line.strip().startswith("why: "))
    reason = why.removeprefix("why: ")
    assert re.match(r"urgent \(0\.\d{2,3}, urgent from 0\.\d{2,3}\): urgent: \w", reason), text
    assert not re.search(r"~|\(level|\w=\w", reason), reason
    (decision,) = first_start.explain_json["decisions"]
    assert (decision["label"], decision["held"], decision["reason"]) == ("urgent", False, reason)
    assert decision["score"] is not None
    assert f"{decision['score']:.2f}" in reason


def test_status_shows_the_history_was_read(first_start: FirstStart) -> None:
    assert first_start.history_ready, first_start.decisions
    history = first_start.status["history"]
    assert history["state"] == "ready", history
    assert history["stopped"] is None, history
    # Every header of INBOX, Archive and Sent, read before triage began (Junk etc. left out).
    assert history["messages"] == first_start.mailbox_size, history
    assert history["senders"] >= 3, history  # Carla, Dan and Bob at least
    line = next(
        line for line in first_start.status_text.splitlines() if "history with senders" in line
    )
    assert re.search(r"history with senders: \d+ senders; \d+ headers from 3 folder", line), line


# --- 2. train with three urgent examples -------------------------------------------------------


def _thin_mailbox(conn: imaplib.IMAP4) -> dict[str, int]:
    """60 received messages over a month, 3 of them answered within 4 hours.

    Returns what was written, by the label ``train`` will derive: urgent (answered within the
    hour), normal (people's mail, some answered only days later) and bulk (list headers).
    """
    counts = {"urgent": 0, "normal": 0, "bulk": 0}
    people = ("carla@acme.example", "dan@globex.example", "bob@corp.example", "eve@corp.example")
    for i in range(60):
        at = START + timedelta(hours=11 * i)
        mid = f"<t{i}@thin.example>"
        if i % 3 == 0:
            subject = f"Tech Weekly #{i}"
            conn.append("INBOX", None, None, _newsletter(mid, subject, at))
            counts["bulk"] += 1
            continue
        sender = people[i % len(people)]
        subject = f"project note {i}"
        body = f"Hello, some notes on item {i} for when you have a moment. Regards"
        conn.append("INBOX", None, None, _received(mid, sender, subject, body, at))
        if i in (10, 29, 50):  # answered within the hour: urgent
            late = timedelta(minutes=30)
            counts["urgent"] += 1
        elif i % 7 == 0:  # answered, but two days later: normal
            late = timedelta(days=2)
            counts["normal"] += 1
        else:
            counts["normal"] += 1
            continue
        conn.append("Sent", r"(\Seen)", None,
                    _reply(f"<rt{i}@corp.example>", sender, mid, subject, at + late))  # fmt: skip
    return counts


@dataclass(frozen=True)
class Trained:
    output: str
    password: str
    saved: Path
    metrics: dict[str, Any]
    thresholds: dict[str, float]
    threshold: float | None


@pytest.fixture(scope="module")
def thin_training(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """``commsproxy train`` over IMAP on a mailbox with three urgent examples, run once."""
    directory = tmp_path_factory.mktemp("thin")
    user, password = dovecot.new_user()
    with imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=30) as conn:
        conn.login(user, password)
        written = _thin_mailbox(conn)
    assert written == {"urgent": 3, "normal": 37, "bulk": 20}
    config = write_triage_config(
        dovecot, user, password, directory / "commsproxy",
        tables=_accounts(f"Public/N{uuid.uuid4().hex[:8]}"),  # no account folders: none trained
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(directory / "data"))
        result = CliRunner().invoke(main, ["train", "--config", str(config), "-q"])
    assert result.exit_code == 0, result.output
    saved = directory / "data" / "commsproxy" / "models" / "urgency.skops"
    _, info = load_model(saved, expected_task="urgency")
    return Trained(
        result.output, password, saved, dict(info.metrics), dict(info.thresholds), info.threshold
    )


def _notes(output: str) -> list[str]:
    return [
        line.removeprefix("note: ") for line in output.splitlines() if line.startswith("note: ")
    ]


def test_train_on_three_urgent_says_so_and_keeps_the_bundled_model(thin_training: Trained) -> None:
    out = thin_training.output
    assert "3 urgent, 37 normal, 20 bulk" in out, out
    assert thin_training.password not in out
    # In words: too few urgent messages to measure a model of one's own, so the bundled one
    # is kept (train.py, train_urgency's notes).
    notes = _notes(out)
    assert any(
        "too few urgent messages" in note and "messages you answered within 4 hours" in note
        and "at least 20 are needed" in note
        for note in notes
    ), out  # fmt: skip
    assert "keeping the bundled model, with your history with senders" in notes, out
    summary = next(line for line in out.splitlines() if line.startswith("on your newest mail: "))
    assert summary.startswith("on your newest mail: the bundled model as it is delivers "), out

    # What was saved is the bundled model at its own cuts, and its sidecar says so.
    assert f"saved {thin_training.saved}" in out, out
    metrics = thin_training.metrics
    assert metrics["choice"] == "the bundled model as it is", metrics
    assert metrics["notes"] == notes, metrics
    _, bundled = load_bundled("urgency")
    assert thin_training.thresholds == dict(bundled.thresholds)
    assert thin_training.threshold == bundled.threshold
    # The report's figures are the sidecar's: what the user read is what was measured.
    held = re.search(r"holds (\d+)% of the rest", summary)
    assert held is not None, summary
    assert int(held.group(1)) == round(100 * metrics["other_held"]), (summary, metrics)
    assert metrics["other_held"] > 0.0, metrics  # not a model that holds nothing


def test_kept_model_holds_half_of_the_other_mail(thin_training: Trained) -> None:
    """MIN_HELD_SHARE: the model train saves holds at least half of the other mail.

    The bundled model with cuts measured on more urgent mail (recipe.BUNDLED_VALIDATION) holds
    54% of the thin mailbox's other mail and delivers 2 of its 3 urgent at once; the one it
    replaced held 46% and delivered 1 of 3.
    """
    assert thin_training.metrics["other_held"] >= 0.5, thin_training.output
    assert "the bundled model holds only" not in thin_training.output, thin_training.output
