"""The auto-reply's words (release time in the user's zone, the urgent hint) and its headers."""

from __future__ import annotations

from datetime import UTC, datetime, time
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

from commsproxy.config import AutoreplyConfig
from commsproxy.triage.autoreply_text import (
    reply_message,
    reply_text,
    spoken_release,
    spoken_times,
    urgent_hint,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
TIMES = (time(8, 30), time(12, 30), time(16, 30))
# Monday 7 December 2026, 10:05 in Brussels (09:05 UTC).
NOW = datetime(2026, 12, 7, 9, 5, tzinfo=UTC)


def test_times_and_release_in_words() -> None:
    assert spoken_times(TIMES) == "08:30, 12:30 and 16:30"
    assert spoken_times((time(16, 30), time(8, 30))) == "08:30 and 16:30"
    assert spoken_times((time(16, 30),)) == "16:30"
    today = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)  # 12:30 in Brussels
    assert spoken_release(today, NOW, BRUSSELS) == "12:30 today"
    assert spoken_release(datetime(2026, 12, 8, 7, 30, tzinfo=UTC), NOW, BRUSSELS) == (
        "08:30 tomorrow"
    )
    assert spoken_release(datetime(2026, 12, 11, 7, 30, tzinfo=UTC), NOW, BRUSSELS) == (
        "08:30 on Friday"
    )
    assert spoken_release(datetime(2026, 12, 21, 7, 30, tzinfo=UTC), NOW, BRUSSELS) == (
        "08:30 on Monday 21 December"
    )


def test_the_day_is_the_users_not_utc() -> None:
    # 23:30 UTC on Monday is 00:30 Tuesday in Brussels: a release at 08:30 is "today" there.
    late = datetime(2026, 12, 7, 23, 30, tzinfo=UTC)
    assert spoken_release(datetime(2026, 12, 8, 7, 30, tzinfo=UTC), late, BRUSSELS) == (
        "08:30 today"
    )


def test_urgent_hint() -> None:
    assert urgent_hint(AutoreplyConfig(), "jan@acme.be", "urgent") == (
        "write to jan+urgent@acme.be"
    )
    assert urgent_hint(AutoreplyConfig(), "jan+x@acme.be", "asap") == "write to jan+asap@acme.be"
    configured = AutoreplyConfig(urgent="call +32 2 123 45 67.")
    assert urgent_hint(configured, "jan@acme.be", "") == "call +32 2 123 45 67"
    assert urgent_hint(AutoreplyConfig(), "jan@acme.be", "") == ""


def test_built_in_text() -> None:
    release = datetime(2026, 12, 7, 11, 30, tzinfo=UTC)
    text = reply_text(
        AutoreplyConfig(), release=release, now=NOW, zone=BRUSSELS, times=TIMES,
        urgent="write to jan+urgent@acme.be",
    )  # fmt: skip
    assert max(len(line) for line in text.splitlines()) <= 72
    text = " ".join(text.split())
    times = "I read mail at set times: 08:30, 12:30 and 16:30"
    assert f"{times}; yours will be read at 12:30 today" in text
    assert "If it cannot wait, write to jan+urgent@acme.be." in text
    without = reply_text(
        AutoreplyConfig(), release=release, now=NOW, zone=BRUSSELS, times=TIMES, urgent=""
    )
    assert "cannot wait" not in without
    assert "12:30 today" in without


def test_custom_message() -> None:
    config = AutoreplyConfig(message="Back at {release}. Urgent? {urgent}!")
    release = datetime(2026, 12, 8, 7, 30, tzinfo=UTC)
    text = reply_text(
        config, release=release, now=NOW, zone=BRUSSELS, times=TIMES, urgent="call 123"
    )
    assert text == "Back at 08:30 tomorrow. Urgent? call 123!"


def test_message_headers_follow_rfc_3834() -> None:
    message = reply_message(
        sender="jan@acme.be",
        recipient="pia@client.example",
        subject="Offer für Q1",
        message_id="<q1@client.example>",
        references=("<q0@client.example>",),
        text="Hello\nyours will be read at 12:30 today",
        now=NOW,
    )
    raw = bytes(message)
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["In-Reply-To"] == "<q1@client.example>"
    assert parsed["References"] == "<q0@client.example> <q1@client.example>"
    assert parsed["Subject"] == "Auto: Offer für Q1"
    assert parsed["From"] == "jan@acme.be"
    assert parsed["To"] == "pia@client.example"
    assert parsed["Message-ID"].endswith("@acme.be>")
    assert parsed["Date"] is not None
    assert "Precedence" not in parsed
    body = parsed.get_body()
    assert body is not None
    assert "12:30 today" in body.get_content()


def test_references_are_bounded() -> None:
    refs = tuple(f"<r{n}@x.example>" for n in range(50))
    message = reply_message(
        sender="jan@acme.be", recipient="pia@client.example", subject="s",
        message_id="<q@x.example>", references=refs, text="t", now=NOW,
    )  # fmt: skip
    kept = str(message["References"]).split()
    assert len(kept) == 10
    assert kept[-1] == "<q@x.example>"
    assert kept[-2] == "<r49@x.example>"


def test_a_release_between_minutes_is_promised_at_the_next_one() -> None:
    at = datetime(2026, 12, 7, 10, 5, 37, tzinfo=UTC)
    assert spoken_release(at, NOW, ZoneInfo("UTC")) == "10:06 today"
