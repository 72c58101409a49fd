"""Auto-replies from ``commsproxy run``: the login's ``upstream_smtp`` and its password_command
reach the auto-reply part through the service, and the day's reply is remembered across a
kill: the same sender writing again after a restart gets no second one that day."""

from __future__ import annotations

import shlex
import signal
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

from commsproxy.triage.state_store import StateStore
from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import quiet_batches, triage_proxy, wait_until


def _config(dovecot: Dovecot, user: str, password: str, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "config.toml"
    command = f"printf %s {shlex.quote(password)}".replace("\\", "\\\\").replace('"', '\\"')
    config.write_text(
        f"""
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{directory / "state"}"

[[login]]
username = "{user}"
password_command = "{command}"
upstream_imap = "imap://127.0.0.1:{dovecot.imap_port}"
upstream_smtp = "smtp://127.0.0.1:{dovecot.submission_port}"

[triage]
gate_timeout = 5
never_urgent = ["*@client.example"]

[accounts]
internal_domains = ["acme.example"]

[web]
enabled = false

[autoreply]
enabled = true
urgent = "call +32 2 123 45 67"
{quiet_batches()}
""",
        encoding="utf-8",
    )
    return config


def _mail(user: str, sender: str, subject: str) -> bytes:
    headers = {
        "From": sender, "To": f"{user}@acme.example", "Subject": subject,
        "Message-ID": f"<run-{uuid.uuid4().hex}@client.example>",
        "Date": datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000"),
    }  # fmt: skip
    return render(headers, "Hi Jan, could you send me the signed contract? Thanks, Pia")


def _replies(dovecot: Dovecot, address: str) -> list[bytes]:
    return [m.content for m in dovecot.relay.captured() if address in m.rcpt_tos]


def test_run_sends_one_reply_a_day_across_a_kill(dovecot: Dovecot, tmp_path: Path) -> None:
    user, password = dovecot.new_user()
    pia = f"pia-{uuid.uuid4().hex[:8]}@client.example"
    config = _config(dovecot, user, password, tmp_path)
    proxy = triage_proxy(config)
    try:
        dovecot.deliver(user, _mail(user, pia, "The contract"))
        assert wait_until(lambda: len(_replies(dovecot, pia)) == 1, 20), proxy.log_text()
        assert proxy.wait_for_log(rf"auto-reply sent to {pia}", 5), proxy.log_text()
        proxy.signal(signal.SIGKILL)
        proxy.wait()
    finally:
        proxy.stop()
    (reply,) = _replies(dovecot, pia)
    parsed = message_from_bytes(reply, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["From"] == f"{user}@acme.example"
    body = parsed.get_body()
    assert body is not None
    assert "If it cannot wait, call +32 2 123 45 67." in " ".join(body.get_content().split())
    assert password not in proxy.log_text()

    again = triage_proxy(config)
    try:
        dovecot.deliver(user, _mail(user, pia, "The contract, again"))
        assert again.wait_for_log(r"held 1 message", 20), again.log_text()
    finally:
        again.stop()
    # Decided and held, and no reply queued: the day's reply was remembered.
    with StateStore.open(tmp_path / "state") as store:
        assert store.autoreplies(user, "queued") == []
        assert [r.recipient for r in store.autoreplies(user, "sent")] == [pia]
    assert len(_replies(dovecot, pia)) == 1
