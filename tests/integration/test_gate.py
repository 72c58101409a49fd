"""No flicker: a client watching INBOX through the proxy never learns of mail that gets held.

200 mixed messages (a quarter from a VIP sender, the rest ordinary mail and newsletters) are
delivered over LMTP while a client IDLEs — or polls with NOOP — through the triaging proxy. The
client must never see an EXPUNGE (which would mean it was shown a message that was then held),
its message count must never exceed the urgent mail delivered so far, and in the end every
message is in exactly one place: urgent in INBOX, the rest in the hold mailboxes.
"""

from __future__ import annotations

import imaplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, triage_proxy, wait_until, where, write_triage_config

COUNT = 200


def mixed_mail(user: str, tag: str) -> Iterator[tuple[str, bytes, bool]]:
    """(Message-ID, message, urgent?) for COUNT messages: every 4th from the VIP sender."""
    for i in range(COUNT):
        mid = f"<gate-{tag}-{i}@example.org>"
        headers = {"To": user, "Message-ID": mid, "Date": "Mon, 23 Nov 2026 09:00:00 +0000"}
        if i % 4 == 0:
            headers |= {"From": "boss@example.com", "Subject": f"Call me about contract {i}"}
            yield mid, render(headers, "Please call me today."), True
        elif i % 4 == 1:
            headers |= {
                "From": "noreply@news.example",
                "Subject": f"Weekly deals {i}",
                "List-Id": "<deals.news.example>",
                "List-Unsubscribe": "<mailto:unsubscribe@news.example>",
                "Precedence": "bulk",
            }
            yield mid, render(headers, "Deals of the week. Unsubscribe here."), False
        else:
            headers |= {"From": f"colleague{i}@corp.example", "Subject": f"Notes {i}"}
            yield mid, render(headers, "Notes from the meeting, for later."), False


@pytest.fixture
def triaging(dovecot: Dovecot, tmp_path: Path) -> Iterator[tuple[ProxyProcess, str, str]]:
    user, password = dovecot.new_user()
    process = triage_proxy(write_triage_config(dovecot, user, password, tmp_path))
    yield process, user, password
    process.stop()


def deliver_all(dovecot: Dovecot, user: str, tag: str) -> tuple[set[str], set[str]]:
    urgent, held = set(), set()
    for mid, message, is_urgent in mixed_mail(user, tag):
        dovecot.deliver(user, message)
        (urgent if is_urgent else held).add(mid)
    return urgent, held


def settle(dovecot: Dovecot, user: str, expected: int) -> dict[str, str]:
    assert wait_until(lambda: sum(census(dovecot, user).values()) >= expected, 30)
    assert wait_until(lambda: dovecot.message_count(user, "INBOX") == expected // 4, 30)
    return where(dovecot, user)


def test_idling_client_never_sees_held_mail(
    dovecot: Dovecot, triaging: tuple[ProxyProcess, str, str]
) -> None:
    process, user, password = triaging
    client = IMAPClient("127.0.0.1", port=process.imap_port, ssl=False, timeout=30)
    client.login(user, password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    events: list[tuple[int, bytes]] = []
    stop = threading.Event()

    def watch() -> None:
        client.idle()
        while not stop.is_set():
            for response in client.idle_check(timeout=0.5):
                if len(response) >= 2 and isinstance(response[0], int):
                    events.append((response[0], response[1]))
        client.idle_done()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        urgent, held = deliver_all(dovecot, user, "idle")
        placed = settle(dovecot, user, COUNT)
        # The client hears of the last urgent messages a moment after they are decided.
        assert wait_until(
            lambda: any(n == len(urgent) for n, kind in events if kind == b"EXISTS"), 30
        ), (events[-20:], process.log_text()[-3000:])
    finally:
        stop.set()
        watcher.join(30)
    kinds = {kind for _, kind in events}
    assert b"EXPUNGE" not in kinds, [e for e in events if e[1] == b"EXPUNGE"][:5]
    counts = [n for n, kind in events if kind == b"EXISTS"]
    assert counts == sorted(counts)
    assert max(counts) == len(urgent)
    assert all(placed[mid] == "INBOX" for mid in urgent)
    assert all(placed[mid] in ("Later", "Later/Bulk") for mid in held)
    assert set(census(dovecot, user).values()) == {1}
    assert client.select_folder("INBOX")[b"EXISTS"] == len(urgent)
    client.logout()
    assert "Traceback" not in process.log_text()


def test_polling_client_never_sees_held_mail(
    dovecot: Dovecot, triaging: tuple[ProxyProcess, str, str]
) -> None:
    process, user, password = triaging
    conn = imaplib.IMAP4("127.0.0.1", process.imap_port, timeout=30)
    conn.login(user, password)
    conn.select("INBOX")
    seen_exists: list[int] = []
    seen_expunge: list[bytes] = []
    stop = threading.Event()
    lock = threading.Lock()

    def poll() -> None:
        while not stop.is_set():
            with lock:
                conn.noop()
                for value in conn.untagged_responses.pop("EXISTS", []):
                    seen_exists.append(int(value))
                seen_expunge.extend(conn.untagged_responses.pop("EXPUNGE", []))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        urgent, _held = deliver_all(dovecot, user, "poll")
        placed = settle(dovecot, user, COUNT)
        assert wait_until(lambda: len(urgent) in seen_exists, 30)
    finally:
        stop.set()
        poller.join(30)
    assert seen_expunge == []
    assert max(seen_exists) == len(urgent)
    assert all(placed[mid] == "INBOX" for mid in urgent)
    assert set(census(dovecot, user).values()) == {1}
    # STATUS and a fresh SELECT agree with what the client was told.
    status = conn.status("INBOX", "(MESSAGES)")[1][0]
    assert f"MESSAGES {len(urgent)}".encode() in status
    conn.logout()


def test_select_right_after_new_mail_never_shows_held_mail(
    dovecot: Dovecot, triaging: tuple[ProxyProcess, str, str]
) -> None:
    """Each message is delivered and INBOX selected again at once, before triage can have
    seen it: the SELECT waits for it, and shows it only if it stays (urgent)."""
    process, user, password = triaging
    client = IMAPClient("127.0.0.1", port=process.imap_port, ssl=False, timeout=30)
    client.login(user, password)
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    counts: list[int] = []
    urgent = 0
    for _, (_mid, message, is_urgent) in zip(range(24), mixed_mail(user, "select"), strict=False):
        dovecot.deliver(user, message)
        urgent += is_urgent
        answer = client.select_folder("INBOX")
        counts.append(answer[b"EXISTS"])
        assert answer[b"EXISTS"] == urgent, (counts, process.log_text()[-3000:])
        assert b"UIDNEXT" in answer  # the server's own answer, not one the proxy made up
    responses = client.noop()[1]
    assert not [r for r in responses if len(r) >= 2 and r[1] == b"EXPUNGE"], responses
    assert dovecot.message_count(user, "INBOX") == urgent == 6
    client.logout()
    log = process.log_text()
    assert "Traceback" not in log
    assert "too slow" not in log
    assert "did not catch up" not in log
