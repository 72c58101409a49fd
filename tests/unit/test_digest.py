"""The digest message a release appends to INBOX."""

from __future__ import annotations

import email
import email.message
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from commsproxy.classifier.mail import parse_mail
from commsproxy.triage.release import digest_message

NOW = datetime(2024, 3, 5, 17, 30, tzinfo=UTC)

ENTRIES = [
    ("work@corp.example", "zed@x.org", "Quarterly numbers", "low urgency 0.12 (no question)"),
    ("-", "news@list.example", "Weekly news", "newsletter or notification"),
    ("Alice@home.example", "bob@y.org", "", "can wait"),
    ("work@corp.example", "Amy@x.org", "Lunch?", "moved here by hand"),
]


def parsed(data: bytes) -> email.message.Message:
    return email.message_from_bytes(data)


def body(data: bytes) -> str:
    return data.decode("utf-8").partition("\r\n\r\n")[2]


def test_digest_is_a_message_with_the_headers() -> None:
    data = digest_message("me@example.org", "Later", ENTRIES, NOW)
    message = parsed(data)
    assert message["Subject"] == "commsproxy: 4 held messages released (Later)"
    assert message["To"] == "me@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert message["Message-ID"].startswith("<digest-")
    assert message["Message-ID"].endswith("@commsproxy.localhost>")
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert not message.defects


def test_digest_reads_with_parse_mail() -> None:
    data = digest_message("me@example.org", "Later", ENTRIES, NOW)
    mail = parse_mail(data)
    assert mail.sender == "commsproxy@localhost"
    assert mail.to == ("me@example.org",)
    assert mail.subject == "commsproxy: 4 held messages released (Later)"
    assert mail.date == NOW
    assert mail.headers["auto-submitted"] == "auto-generated"
    assert mail.message_id is not None
    assert "4 messages released from Later." in mail.body


def test_digest_lines_end_in_crlf() -> None:
    data = digest_message("me@example.org", "Later", ENTRIES, NOW)
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_digest_date_is_in_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    message = parsed(digest_message("me", "Later", ENTRIES, local))
    assert message["Date"].endswith("+0000")
    assert parsedate_to_datetime(message["Date"]) == NOW


def test_digest_message_ids_are_unique() -> None:
    first = parsed(digest_message("me", "Later", ENTRIES, NOW))["Message-ID"]
    second = parsed(digest_message("me", "Later", ENTRIES, NOW))["Message-ID"]
    assert first != second


def test_digest_groups_by_account_no_account_last() -> None:
    text = body(digest_message("me", "Later", ENTRIES, NOW))
    assert text.split("\r\n") == [
        "4 messages released from Later.",
        "",
        "Account: Alice@home.example",
        "  - bob@y.org: (no subject)",
        "      why: can wait",
        "",
        "Account: work@corp.example",
        "  - Amy@x.org: Lunch?",
        "      why: moved here by hand",
        "  - zed@x.org: Quarterly numbers",
        "      why: low urgency 0.12 (no question)",
        "",
        "No account",
        "  - news@list.example: Weekly news",
        "      why: newsletter or notification",
        "",
        "",
    ]


def test_digest_of_one_message_is_singular() -> None:
    data = digest_message("me", "Bulk", [("-", "a@b.c", "Hi", "can wait")], NOW)
    assert parsed(data)["Subject"] == "commsproxy: 1 held message released (Bulk)"
    assert body(data).startswith("1 message released from Bulk.\r\n")


def test_digest_non_ascii_text_is_utf8() -> None:
    entries = [("-", "jörg@example.de", "Grüße aus Köln", "can wait")]
    data = digest_message("me", "Later", entries, NOW)
    assert "  - jörg@example.de: Grüße aus Köln" in body(data)
    payload = parsed(data).get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert "Grüße aus Köln" in payload.decode("utf-8")


def test_digest_over_the_limit_is_summarised() -> None:
    entries = [("-", f"s{i:03d}@x.org", f"Subject {i}", f"reason {i}") for i in range(250)]
    text = body(digest_message("me", "Later", entries, NOW))
    assert text.count("  - ") == 200
    assert text.count("      why: ") == 200
    assert "  - s199@x.org: Subject 199" in text
    assert "s200@x.org" not in text
    assert text.rstrip("\r\n").endswith("... and 50 more.")
    assert text.startswith("250 messages released from Later.")


def test_digest_at_the_limit_is_not_summarised() -> None:
    entries = [("-", f"s{i:03d}@x.org", "S", "r") for i in range(200)]
    text = body(digest_message("me", "Later", entries, NOW))
    assert text.count("  - ") == 200
    assert "more." not in text


def test_digest_limit_across_accounts() -> None:
    entries = [("a@x", f"s{i:03d}@x.org", "S", "r") for i in range(150)]
    entries += [("b@x", f"t{i:03d}@x.org", "S", "r") for i in range(100)]
    text = body(digest_message("me", "Later", entries, NOW))
    assert text.count("  - s") == 150
    assert text.count("  - t") == 50
    assert "... and 50 more." in text


def test_digest_no_heading_for_an_account_with_nothing_listed() -> None:
    entries = [("a@x", f"s{i:03d}@x.org", "S", "r") for i in range(200)]
    entries += [("b@x", "t@x.org", "S", "r")]
    text = body(digest_message("me", "Later", entries, NOW))
    assert "... and 1 more." in text
    assert "Account: b@x" not in text
