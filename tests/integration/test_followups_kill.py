"""Follow-ups across a SIGKILL of ``commsproxy run``: each comes back once, none after an answer.

Four messages go out through the proxy's SMTP side (and two more with a follow-up address:
``2d@`` is due two working days on, ``never@`` is not watched). run is killed; meanwhile the
answer to one arrives, and the state file is set as a kill would leave it: every due time of
the four in the past, one follow-up "returning" whose reminder the killed run had appended
already, one "returning" whose APPEND never happened. The next run decides the answer in its
first pass, before the follow-ups look at the clock: no reminder for the answered one, and
exactly one for each of the three others.
"""

from __future__ import annotations

import imaplib
import json
import re
import shlex
import signal
import smtplib
import sqlite3
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

from commsproxy.imap.names import FOLLOW_UP, NOT_HELD, TRIAGED
from commsproxy.triage.followup_return import reminder_id
from commsproxy.triage.state_store import FILENAME, StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import quiet_batches, triage_proxy, wait_until

ME = "me@corp.example"
READY = r"history\[[^\]]+\]: (ready|loaded)"


def config(dovecot: Dovecot, user: str, password: str, directory: Path) -> Path:
    directory.mkdir(parents=True)
    path = directory / "config.toml"
    command = json.dumps(f"printf %s {shlex.quote(password)}")
    path.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{directory / "state"}"

[[login]]
username = "{user}"
password_command = {command}
upstream_imap = "imap://127.0.0.1:{dovecot.imap_port}"
upstream_smtp = "smtp+starttls://localhost:{dovecot.submission_port}"
cafile = "{dovecot.ca_file}"

[triage]
history_seconds = 10
history_sent_check = 1
{quiet_batches()}
[followup]
days = 3

[accounts]
internal_domains = ["corp.example"]

[web]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def outgoing(name: str, to: str, subject: str) -> tuple[str, bytes]:
    mid = f"<{name}-{datetime.now(UTC).timestamp():.0f}@corp.example>"
    headers = {"From": ME, "To": to, "Subject": subject, "Message-ID": mid}
    return mid, render(headers | {"Date": format_datetime(datetime.now(UTC))}, "Well?")


def reminders(dovecot: Dovecot, user: str, password: str) -> list[tuple[str, str]]:
    """INBOX's $FollowUp messages: (Message-ID, flags)."""
    conn = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
    conn.login(user, password)
    conn.select("INBOX", readonly=True)
    uids = conn.uid("SEARCH", "KEYWORD", FOLLOW_UP)[1][0].split()
    out = []
    for uid in uids:
        data = conn.uid("FETCH", uid, "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")[1]
        meta, header = data[0][0].decode(), data[0][1].decode()
        found = re.search(r"<[^>]+>", header)
        assert found is not None
        out.append((found.group(0), meta))
    conn.logout()
    return out


def test_killed_run_gives_one_reminder_each_and_none_after_an_answer(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    user, password = dovecot.new_user()
    path = config(dovecot, user, password, tmp_path / "login")
    state = tmp_path / "login" / "state"
    in_2d = outgoing("in-2d", "fay@client.example", "Samples")
    never = outgoing("never", "gus@client.example", "Thanks")
    proxy = triage_proxy(path)
    try:
        assert proxy.wait_for_log(READY, 30), proxy.log_text()
        sent = {
            name: outgoing(name, to, subject)
            for name, to, subject in (
                ("answered", "ann@acme.example", "Order"),
                ("control", "cid@client.example", "Invoice"),
                ("half-done", "dan@client.example", "Offer"),
                ("not-yet", "eve@client.example", "Quote"),
            )
        }
        with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=30) as smtp:
            smtp.login(user, password)
            for _, content in sent.values():
                smtp.sendmail(ME, [content.split(b"To: ")[1].split(b"\r\n")[0].decode()], content)
            # The follow-up address, kept out of the envelope, says when (or never).
            smtp.sendmail(ME, ["fay@client.example", "2d@followup.invalid"], in_2d[1])
            smtp.sendmail(ME, ["gus@client.example", "never@followup.invalid"], never[1])

        def watched() -> bool:
            with StateStore.open(state) as store:
                return (
                    len(store.followups(user)) == 5 and store.followup(user, never[0]) is not None
                )

        assert wait_until(watched, 20), proxy.log_text()
        with StateStore.open(state) as store:
            two_days, not_at_all = store.followup(user, in_2d[0]), store.followup(user, never[0])
        assert two_days is not None
        assert not_at_all is not None
        assert timedelta(days=2) <= two_days.due_at - two_days.sent_at <= timedelta(days=4)
        assert not_at_all.state == "cancelled"
    finally:
        proxy.signal(signal.SIGKILL)
        proxy.wait()

    # While run is down: Ann answers; the killed run had appended one reminder already.
    answered, control = sent["answered"][0], sent["control"][0]
    half_done, not_yet = sent["half-done"][0], sent["not-yet"][0]
    answer = render(
        {"From": "ann@acme.example", "To": ME, "Subject": "Re: Order", "Message-ID":
         "<answer@acme.example>", "In-Reply-To": answered, "References": answered},
        "Here it is.",
    )  # fmt: skip
    dovecot.deliver(user, answer)
    early = render(
        {"From": ME, "To": ME, "Subject": "No answer yet: Offer",
         "Message-ID": f"<{reminder_id(half_done.strip('<>'))}>"},
        "appended by the killed run",
    )  # fmt: skip
    conn = imaplib.IMAP4("127.0.0.1", dovecot.imap_port, timeout=30)
    conn.login(user, password)
    assert conn.append("INBOX", f"({FOLLOW_UP} {TRIAGED} {NOT_HELD})", None, early)[0] == "OK"
    conn.logout()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="microseconds")
    with sqlite3.connect(state / FILENAME) as db:
        db.execute("UPDATE followups SET due_at = ? WHERE message_id != ?", (past, in_2d[0][1:-1]))
        db.execute(
            "UPDATE followups SET state = 'returning' WHERE message_id IN (?, ?)",
            (half_done.strip("<>"), not_yet.strip("<>")),
        )
    db.close()

    again: ProxyProcess = triage_proxy(path)
    try:
        assert again.wait_for_log(r"no answer to " + re.escape(not_yet), 30), again.log_text()
        assert again.wait_for_log(r"no answer to " + re.escape(control), 10), again.log_text()
        text = again.log_text()
        assert f"an answer came to {answered}" in text
        assert "found in INBOX from before" in text
        assert f"no answer to {answered}" not in text
        back = reminders(dovecot, user, password)
        ids = sorted(mid for mid, _ in back)
        expected = [f"<{reminder_id(m.strip('<>'))}>" for m in (control, half_done, not_yet)]
        assert ids == sorted(expected), back
        assert all("\\Seen" not in flags for _, flags in back)
        with StateStore.open(state) as store:
            states = {
                f.message_id: f.state for f in store.followups(user, ("answered", "returned"))
            }
            still = store.followup(user, in_2d[0])
        assert still is not None
        assert still.state == "waiting", "not due yet: no reminder"
        assert states == {
            answered.strip("<>"): "answered",
            **{m.strip("<>"): "returned" for m in (control, half_done, not_yet)},
        }
    finally:
        again.stop()
