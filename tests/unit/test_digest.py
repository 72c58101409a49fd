"""The digest a release appends to INBOX: its parts, order, sections, escaping and the cap."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser

from commsproxy.classifier.mail import parse_mail
from commsproxy.triage.digest import (
    LIMIT,
    MISTAKES,
    OTHER_MAIL,
    THE_REST,
    Digest,
    DigestItem,
    arrange,
    digest_message,
)
from commsproxy.triage.digest_order import Ordering, Rank

NOW = datetime(2024, 3, 5, 17, 30, tzinfo=UTC)
LINK = "http://127.0.0.1:1180/confirm/always-urgent?sender=ann%40acme.example&sig=abc"


def item(
    sender: str,
    subject: str = "S",
    *,
    rank: Rank = Rank.OTHER,
    minutes_ago: int = 0,
    account: str | None = None,
    mistake: tuple[str, ...] = (),
    name: str = "",
    link: str | None = None,
    reason: str = "no sign it is urgent",
) -> DigestItem:
    if mistake:
        rank = Rank.MISTAKE
    arrived = NOW - timedelta(minutes=minutes_ago)
    return DigestItem(
        sender, name, subject, account, reason, mistake, Ordering(rank, arrived), link
    )


def message_of(digest: Digest, login: str = "me@example.org", now: datetime = NOW) -> EmailMessage:
    data = digest_message(login, digest, now, "<digest-1@commsproxy.localhost>")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


class Page(HTMLParser):
    """The HTML part as a browser reads it: text, tags, attributes."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def body(self) -> str:
        return " ".join(" ".join(self.text).split())


def lines_starting(text: str, start: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(start)]


# --- the message --------------------------------------------------------------------------


def test_digest_is_multipart_alternative_with_text_and_html() -> None:
    digest = arrange([item("a@x.example"), item("b@y.example")], "Later", grouped=False)
    data = digest_message("me@example.org", digest, NOW, "<digest-1@commsproxy.localhost>")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in message.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # the richest last, as RFC 2046 asks
    assert all(part.get_content_charset() == "utf-8" for part in message.iter_parts())
    assert message["Subject"] == "commsproxy: 2 held messages released (Later)"
    assert message["From"] == "commsproxy <commsproxy@localhost>"
    assert message["To"] == "me@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"] == "<digest-1@commsproxy.localhost>"
    assert parsedate_to_datetime(message["Date"]) == NOW
    assert not message.defects
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))


def test_digest_reads_with_parse_mail() -> None:
    digest = arrange([item("a@x.example", "Quarterly numbers")], "Later", grouped=False)
    mail = parse_mail(digest_message("me@example.org", digest, NOW))
    assert mail.sender == "commsproxy@localhost"
    assert mail.to == ("me@example.org",)
    assert mail.subject == "commsproxy: 1 held message released (Later)"
    assert mail.date == NOW
    assert mail.message_id is not None
    assert mail.message_id.startswith("<digest-")
    assert "1 message released from Later." in mail.body
    assert "Quarterly numbers" in mail.body


def test_digest_date_is_the_release_time_in_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    message = message_of(arrange([item("a@x.example")], "Later", grouped=False), now=local)
    assert message["Date"].endswith("+0000")
    assert parsedate_to_datetime(message["Date"]) == NOW


def test_digest_message_ids_are_unique_without_one_given() -> None:
    digest = arrange([item("a@x.example")], "Later", grouped=False)
    first = email.message_from_bytes(digest_message("me", digest, NOW))["Message-ID"]
    second = email.message_from_bytes(digest_message("me", digest, NOW))["Message-ID"]
    assert first != second
    assert first.endswith("@commsproxy.localhost>")


def test_a_login_that_is_not_an_address_is_still_the_recipient() -> None:
    digest = arrange([item("a@x.example")], "Later", grouped=False)
    assert message_of(digest, login="me")["To"] == "me"


def test_non_ascii_names_subjects_and_batch_are_encoded_properly() -> None:
    entries = [item("jorg@example.de", "Grüße aus Köln", name="Jörg Müller")]
    digest = arrange(entries, "Später", grouped=False)
    data = digest_message("me@example.org", digest, NOW)
    assert data.isascii()  # headers RFC 2047, parts quoted-printable
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message["Subject"] == "commsproxy: 1 held message released (Später)"
    text = text_of(message)
    assert "* Jörg Müller <jorg@example.de>: Grüße aus Köln" in text
    assert "Jörg Müller &lt;jorg@example.de&gt;" in html_of(message)
    assert "Grüße aus Köln" in Page(html_of(message)).body()


def test_text_and_html_say_the_same() -> None:
    entries = [
        item("ann@acme.example", "Server down", mistake=('it says "urgent"',), link=LINK),
        item("bob@corp.example", "Lunch?", reason="a reply in a conversation"),
    ]
    message = message_of(arrange(entries, "Later", grouped=False))
    text = " ".join(text_of(message).split())
    body = Page(html_of(message)).body()
    for words in (
        "2 messages released from Later.",
        MISTAKES,
        THE_REST,
        "Server down",
        "Lunch?",
        "Why it waited: a reply in a conversation",
        'Perhaps a mistake: it says "urgent"',
        "Should this have come at once? Flag it: commsproxy learns from that.",
        "Always deliver mail from ann@acme.example at once",
        "dragged from its hold folder to INBOX",
    ):
        assert words in text, words
        assert words in body, words


def test_html_escapes_subjects_and_names() -> None:
    entries = [
        item(
            "evil@x.example",
            "<script>alert(1)</script>",
            name='"><img src=x onerror=alert(2)>',
            reason="<b>bold</b>",
        )
    ]
    html = html_of(message_of(arrange(entries, "<i>Later</i>", grouped=False)))
    page = Page(html)
    tags = {tag for tag, _ in page.tags}
    assert "script" not in tags
    assert "img" not in tags
    assert "b" not in tags
    assert "i" not in tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in page.body()
    assert "<b>bold</b>" in page.body()


def test_html_is_self_contained_with_inline_styles_only() -> None:
    entries = [item("ann@acme.example", mistake=("x",), link=LINK), item("b@y.example")]
    page = Page(html_of(message_of(arrange(entries, "Later", grouped=False))))
    tags = [tag for tag, _ in page.tags]
    assert "style" not in tags
    assert "script" not in tags
    assert "img" not in tags
    assert "link" not in tags
    for _, attrs in page.tags:
        assert "src" not in attrs
    links = [attrs.get("href") for tag, attrs in page.tags if tag == "a"]
    assert links == [LINK]  # the one correction link, unescaped back to itself


def test_only_web_links_become_links() -> None:
    entries = [item("ann@acme.example", link="javascript:alert(1)")]
    message = message_of(arrange(entries, "Later", grouped=False))
    assert not [tag for tag, _ in Page(html_of(message)).tags if tag == "a"]
    assert "javascript" not in text_of(message)


def test_without_a_link_the_hint_still_says_how_to_correct() -> None:
    message = message_of(arrange([item("a@x.example")], "Later", grouped=False))
    assert "Flag it: commsproxy learns from that." in text_of(message)
    assert "Always deliver" not in text_of(message)
    assert not [tag for tag, _ in Page(html_of(message)).tags if tag == "a"]


# --- order and sections -------------------------------------------------------------------


def senders(text: str) -> list[str]:
    return [line[2:].partition(":")[0] for line in lines_starting(text, "* ")]


def test_likely_mistakes_first_then_rank_then_newest() -> None:
    entries = [
        item("news@list.example", rank=Rank.BULK, minutes_ago=1),
        item("stranger@x.example", rank=Rank.OTHER, minutes_ago=50),
        item("newer-stranger@x.example", rank=Rank.OTHER, minutes_ago=5),
        item("customer@acme.example", rank=Rank.CUSTOMER, minutes_ago=30),
        item("friend@corp.example", rank=Rank.ANSWERED, minutes_ago=60),
        item("urgent@x.example", mistake=('it says "asap"',), minutes_ago=90),
        item("quick@corp.example", mistake=("you usually answer quick@corp.example within 5 min",),
             minutes_ago=10),
    ]  # fmt: skip
    text = text_of(message_of(arrange(entries, "Later", grouped=False)))
    assert senders(text) == [
        "quick@corp.example",
        "urgent@x.example",
        "friend@corp.example",
        "customer@acme.example",
        "newer-stranger@x.example",
        "stranger@x.example",
        "news@list.example",
    ]
    headings = [line for line in text.splitlines() if line in (MISTAKES, THE_REST)]
    assert headings == [MISTAKES, THE_REST]


def test_without_likely_mistakes_or_accounts_there_is_no_heading() -> None:
    digest = arrange([item("a@x.example"), item("b@y.example")], "Later", grouped=False)
    assert [section.title for section in digest.sections] == [None]
    text = text_of(message_of(digest))
    assert "No account" not in text
    assert "Account" not in text
    assert THE_REST not in text
    assert "---" not in text


def test_grouped_by_account_with_other_mail_last() -> None:
    entries = [
        item("x@nowhere.example", minutes_ago=1),
        item("bo@beta.example", account="Beta", rank=Rank.CUSTOMER, minutes_ago=20),
        item("al@acme.example", account="Acme", rank=Rank.ANSWERED, minutes_ago=40),
        item("al2@acme.example", account="Acme", rank=Rank.CUSTOMER, minutes_ago=2),
        item("panic@beta.example", account="Beta", mistake=('it says "down"',)),
    ]
    digest = arrange(entries, "Later", grouped=True)
    assert [(s.title, s.kind, [i.sender for i in s.items]) for s in digest.sections] == [
        (MISTAKES, "mistakes", ["panic@beta.example"]),
        ("Acme", "account", ["al@acme.example", "al2@acme.example"]),
        ("Beta", "account", ["bo@beta.example"]),
        (OTHER_MAIL, "other", ["x@nowhere.example"]),
    ]
    text = text_of(message_of(digest))
    assert "  Customer: Beta" in text  # a likely mistake names its account
    lines = text.splitlines()
    assert lines.index("Acme") < lines.index("Beta") < lines.index(OTHER_MAIL)
    assert lines[lines.index("Acme") + 1] == "----"


def test_grouped_without_any_account_mail_has_no_other_mail_heading() -> None:
    digest = arrange([item("a@x.example"), item("b@y.example")], "Later", grouped=True)
    assert [section.title for section in digest.sections] == [None]
    with_mistake = arrange([item("a@x.example", mistake=("m",)), item("b@y.example")], "L",
                           grouped=True)  # fmt: skip
    assert [section.title for section in with_mistake.sections] == [MISTAKES, THE_REST]


def test_no_empty_groups() -> None:
    digest = arrange([item("al@acme.example", account="Acme")], "Later", grouped=True)
    assert [section.title for section in digest.sections] == ["Acme"]
    text = text_of(message_of(digest))
    assert OTHER_MAIL not in text
    assert MISTAKES not in text
    assert all(section.items for section in digest.sections)


# --- the cap ------------------------------------------------------------------------------


def test_over_the_limit_is_summarised() -> None:
    entries = [item(f"s{i:03d}@x.example", f"Subject {i}", minutes_ago=i) for i in range(250)]
    digest = arrange(entries, "Later", grouped=False)
    assert (digest.total, digest.shown, digest.left) == (250, LIMIT, 50)
    message = message_of(digest)
    text = text_of(message)
    assert len(lines_starting(text, "* ")) == LIMIT
    assert "* s199@x.example: Subject 199" in text  # newest first: the oldest 50 are left out
    assert "s200@x.example" not in text
    assert "... and 50 more." in text
    assert text.startswith("250 messages released from Later.")
    assert "and 50 more." in Page(html_of(message)).body()


def test_at_the_limit_is_not_summarised() -> None:
    digest = arrange([item(f"s{i:03d}@x.example") for i in range(LIMIT)], "Later", grouped=False)
    text = text_of(message_of(digest))
    assert len(lines_starting(text, "* ")) == LIMIT
    assert "more." not in text


def test_the_limit_across_groups_leaves_no_empty_heading() -> None:
    entries = [item(f"s{i:03d}@acme.example", account="Acme", minutes_ago=i) for i in range(150)]
    entries += [item(f"t{i:03d}@beta.example", account="Beta", minutes_ago=200 + i)
                for i in range(50)]  # fmt: skip
    entries += [item("late@gamma.example", account="Gamma", minutes_ago=999)]
    digest = arrange(entries, "Later", grouped=True)
    assert [(s.title, len(s.items)) for s in digest.sections] == [("Acme", 150), ("Beta", 50)]
    text = text_of(message_of(digest))
    assert "Gamma" not in text
    assert "... and 1 more." in text


def test_the_limit_keeps_likely_mistakes() -> None:
    entries = [item(f"s{i:03d}@x.example", minutes_ago=i) for i in range(300)]
    entries.append(item("oldest@x.example", mistake=('it says "asap"',), minutes_ago=10_000))
    text = text_of(message_of(arrange(entries, "Later", grouped=False)))
    assert senders(text)[0] == "oldest@x.example"
    assert "... and 101 more." in text
