"""parse_mail on the nasty messages real mailboxes are full of."""

from __future__ import annotations

import base64
import contextlib
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier.mail import (
    MAX_BODY_CHARS,
    MAX_MESSAGE_BYTES,
    MailParseError,
    decode_header_value,
    parse_mail,
)


def msg(*lines: str | bytes, sep: bytes = b"\r\n") -> bytes:
    """A message from lines (str is UTF-8 encoded; bytes go in raw, for 8-bit headers)."""
    return sep.join(line if isinstance(line, bytes) else line.encode() for line in lines)


SIMPLE = msg(
    "From: Alice Example <Alice@Example.COM>",
    "To: bob@example.org, Carol <CAROL@example.net>",
    "Cc: dave@example.org",
    "Subject: Quarterly numbers",
    "Date: Tue, 14 May 2024 16:39:00 +0200",
    "Message-ID: <abc.123@example.com>",
    "In-Reply-To: <prev@example.com>",
    "References: <root@example.com>\r\n <prev@example.com>",
    "List-Id: Numbers <numbers.example.com>",
    "X-Priority: 1 (Highest)",
    "",
    "Hi Bob,",
    "the numbers are in.",
)


def test_simple_message() -> None:
    mail = parse_mail(SIMPLE, folder="inbox", path="/tmp/1.")
    assert mail.sender == "alice@example.com"
    assert mail.sender_name == "Alice Example"
    assert mail.to == ("bob@example.org", "carol@example.net")
    assert mail.cc == ("dave@example.org",)
    assert mail.recipients == ("bob@example.org", "carol@example.net", "dave@example.org")
    assert mail.subject == "Quarterly numbers"
    assert mail.date == datetime(2024, 5, 14, 14, 39, tzinfo=UTC)
    assert mail.message_id == "<abc.123@example.com>"
    assert mail.in_reply_to == ("<prev@example.com>",)
    assert mail.references == ("<root@example.com>", "<prev@example.com>")
    assert mail.body == "Hi Bob,\nthe numbers are in."
    assert mail.headers == {"list-id": "Numbers <numbers.example.com>", "x-priority": "1 (Highest)"}
    assert mail.size == len(SIMPLE)
    assert mail.attachments == 0
    assert (mail.folder, mail.path) == ("inbox", "/tmp/1.")


def test_bare_lf_and_mbox_from_line() -> None:
    data = b"From alice@example.com  Thu Aug 22 12:36:23 2002\n" + SIMPLE.replace(b"\r\n", b"\n")
    mail = parse_mail(data)
    assert mail.sender == "alice@example.com"
    assert mail.body == "Hi Bob,\nthe numbers are in."


# -- headers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("=?utf-8?B?R3LDvMOfZSBhdXMgS8O2bG4=?=", "Grüße aus Köln"),
        ("=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Grüße aus Köln"),
        ("=?iso-8859-1?q?caf=E9?= au lait", "café au lait"),
        ("Re: =?utf-8?q?a?= =?utf-8?q?b?=  c", "Re: ab  c"),  # space between words is folding
        ("=?utf-8*de?Q?M=C3=BCller?=", "Müller"),  # RFC 2231 language tag
        ("=?x-unknown-charset?Q?caf=C3=A9?=", "café"),  # unknown charset: guessed
        ("=?utf-8?B?not base64?=", "=?utf-8?B?not base64?="),  # not an encoded word: kept
        ("=?utf-8?B?R3LDvA?=", "Grü"),  # missing padding
        ("plain subject", "plain subject"),
    ],
)
def test_rfc2047(raw: str, decoded: str) -> None:
    assert decode_header_value(raw) == decoded


def test_rfc2047_subject_and_names() -> None:
    mail = parse_mail(
        msg(
            'From: "=?utf-8?Q?J=C3=B6rg_M=C3=BCller?=" <joerg@example.de>',
            "To: =?iso-8859-1?Q?Ren=E9?= <rene@example.fr>",
            "Subject: =?utf-8?B?w4RwZmVs?=\r\n =?utf-8?B?IHVuZCBCaXJuZW4=?=",
            "",
            "x",
        )
    )
    assert mail.sender_name == "Jörg Müller"
    assert mail.to == ("rene@example.fr",)
    assert mail.subject == "Äpfel und Birnen"


@pytest.mark.parametrize(
    ("raw", "subject"),
    [
        ("Grüße, café".encode(), "Grüße, café"),  # raw UTF-8
        ("Grüße, café £5".encode("latin-1"), "Grüße, café £5"),  # raw latin-1
        (b"smart \x93quotes\x94 \x96 dash", "smart \u201cquotes\u201d \u2013 dash"),  # cp1252
    ],
)
def test_raw_8bit_headers(raw: bytes, subject: str) -> None:
    data = msg(b"From: " + raw[:4] + b" <x@example.com>", b"Subject: " + raw, b"", b"body")
    mail = parse_mail(data)
    assert mail.subject == subject
    assert mail.sender == "x@example.com"


def test_folded_subject_whitespace() -> None:
    mail = parse_mail(msg("Subject: a long\r\n\tsubject   line", "", ""))
    assert mail.subject == "a long subject line"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("garbage", None),
        ("Mon, 31 Feb 2024 10:00:00 +0000", None),  # no such day
        ("Mon, 1 Jan 2024 99:00:00 +0000", None),
        ("Mon, 1 Jan 2024 10:00:00 -0000", datetime(2024, 1, 1, 10, tzinfo=UTC)),  # unknown zone
        ("1 Jan 2024 10:00:00", datetime(2024, 1, 1, 10, tzinfo=UTC)),  # no zone: UTC
        ("Mon, 1 Jan 2024 10:00:00 -0500 (EST)", datetime(2024, 1, 1, 15, tzinfo=UTC)),
        ("Mon, 14 May 01 16:39:00 -0700 (PDT)", datetime(2001, 5, 14, 23, 39, tzinfo=UTC)),
        ("Mon, 1 Jan 2024 10:00:00 EST", datetime(2024, 1, 1, 15, tzinfo=UTC)),
    ],
)
def test_dates(header: str | None, expected: datetime | None) -> None:
    lines = ["From: a@example.com", *([f"Date: {header}"] if header else []), "", "body"]
    assert parse_mail(msg(*lines)).date == expected


def test_addresses_garbage_and_groups() -> None:
    mail = parse_mail(
        msg(
            "From: <<<>>>",
            'To: undisclosed-recipients:;, "Doe, John" <John.Doe@Example.com>,, root, <>',
            "Cc: team: Ann <ann@x.org>, bo@x.org;",
            "To: second-to@x.org",
            "",
            "",
        )
    )
    assert mail.sender == ""
    assert mail.sender_name == ""
    assert mail.to == ("john.doe@example.com", "second-to@x.org")
    assert mail.cc == ("ann@x.org", "bo@x.org")


@pytest.mark.parametrize(
    ("header", "message_id"),
    [
        ("<a@b>", "<a@b>"),
        ("  <a@b> (added by relay)", "<a@b>"),
        ("a@b", "<a@b>"),  # brackets missing
        ("<a@b", "<a@b>"),  # half of them
        ("two words", None),
    ],
)
def test_message_id(header: str, message_id: str | None) -> None:
    assert parse_mail(msg(f"Message-ID: {header}", "", "")).message_id == message_id


def test_no_message_id_and_junk_references() -> None:
    mail = parse_mail(msg("In-Reply-To: your message of Monday <x@y>", "References: none", "", ""))
    assert mail.message_id is None
    assert mail.in_reply_to == ("<x@y>",)
    assert mail.references == ()


# -- bodies ----------------------------------------------------------------------------------

NESTED = msg(
    "From: a@example.com",
    "Content-Type: multipart/mixed; boundary=outer",
    "",
    "This is a MIME message.",
    "--outer",
    'Content-Type: multipart/alternative; boundary="outer-inner"',
    "",
    "--outer-inner",
    "Content-Type: text/plain; charset=iso-8859-1",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Gr=FC=DFe, the plain part=",
    " wins.",
    "--outer-inner",
    "Content-Type: text/html; charset=utf-8",
    "",
    "<p>the html part</p>",
    "--outer-inner--",
    "--outer",
    'Content-Type: application/pdf; name="q3.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    "JVBERi0xLjQK",
    "--outer",
    "Content-Type: text/plain",
    "Content-Disposition: attachment",
    "",
    "an attached text file, not the body",
    "--outer",
    "Content-Type: image/png",
    'Content-Disposition: inline; filename="logo.png"',
    "",
    "iVBORw0KGgo=",
    "--outer--",
    "epilogue",
)


def test_nested_multipart() -> None:
    mail = parse_mail(NESTED)
    assert mail.body == "Grüße, the plain part wins."
    assert mail.attachments == 3


def test_html_only() -> None:
    html = (
        "<html><head><title>Offer</title><style>p { color: red }</style>"
        "<script>alert('x')</script></head><body>"
        "<p>Fish&nbsp;&amp;&nbsp;chips &euro;5 &#8212; <b>to</b>day only</p>"
        "<!-- tracking --><div>a &lt; b</div><SCRIPT type=x>var hidden = 1;</SCRIPT>"
        "<table><tr><td>cell one</td><td>cell two</td></tr></table></body></html>"
    )
    mail = parse_mail(
        msg("From: shop@example.com", "Content-Type: text/html; charset=utf-8", "", html)
    )
    assert "Fish & chips €5 — today only" in mail.body
    assert "a < b" in mail.body
    assert "cell one" in mail.body
    assert "cell two" in mail.body
    for hidden in ("alert", "color", "tracking", "hidden", "<", "&amp;"):
        assert hidden not in mail.body.replace("a < b", "")
    assert "  " not in mail.body


def test_empty_plain_alternative_falls_back_to_html() -> None:
    data = msg(
        "Content-Type: multipart/alternative; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain",
        "",
        "  ",
        "--b",
        "Content-Type: text/html",
        "",
        "<p>only here</p>",
        "--b--",
    )
    assert parse_mail(data).body == "only here"


def test_base64_body_with_charset() -> None:
    encoded = base64.encodebytes("Привет, мир".encode("koi8-r")).decode()
    data = msg(
        "Content-Type: text/plain; charset=KOI8-R",
        "Content-Transfer-Encoding: Base64",
        "",
        encoded,
    )
    assert parse_mail(data).body == "Привет, мир"


def test_declared_ascii_with_8bit_body() -> None:
    data = msg("Content-Type: text/plain; charset=us-ascii", "", "naïve café".encode())
    assert parse_mail(data).body == "naïve café"


def test_forwarded_message_inline() -> None:
    data = msg(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: message/rfc822",
        "",
        "From: original@example.com",
        "Subject: the original",
        "",
        "original text",
        "--b--",
    )
    assert parse_mail(data).body == "original text"


# -- broken MIME -----------------------------------------------------------------------------


def test_missing_closing_boundary() -> None:
    data = msg(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: text/plain",
        "",
        "text before the message was cut",
        "--b",
        'Content-Disposition: attachment; filename="big.bin"',
        "",
        "AAAA",
    )
    mail = parse_mail(data)
    assert mail.body == "text before the message was cut"
    assert mail.attachments == 1


def test_bad_base64() -> None:
    data = msg(
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        "SGVsbG8sIHdvcmxk!!!IQ",  # stray characters and a truncated last group
    )
    assert parse_mail(data).body.startswith("Hello, world")


@pytest.mark.parametrize(
    "content_type",
    ["multipart/mixed", "multipart/mixed; boundary=nowhere", 'multipart/mixed; boundary="'],
)
def test_unusable_boundary_reads_body_as_text(content_type: str) -> None:
    data = msg(f"Content-Type: {content_type}", "", "just text")
    assert parse_mail(data).body == "just text"


def test_boundary_prefix_of_inner_boundary() -> None:
    data = msg(
        "Content-Type: multipart/mixed; boundary=b",
        "",
        "--b",
        "Content-Type: multipart/alternative; boundary=bb",
        "",
        "--bb",
        "Content-Type: text/plain",
        "",
        "inner text",
        "--bb--",
        "--b--",
    )
    assert parse_mail(data).body == "inner text"


def test_deep_nesting_is_bounded() -> None:
    depth = 500
    head = "".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(depth)
    )
    data = ("Subject: deep\r\n" + head + "Content-Type: text/plain\r\n\r\ndeep text").encode()
    mail = parse_mail(data)
    assert mail.subject == "deep"
    assert mail.body == ""  # too deep to reach; but no RecursionError


def test_headers_only() -> None:
    mail = parse_mail(b"Subject: no body at all")
    assert mail.subject == "no body at all"
    assert mail.body == ""


# -- size bounds -----------------------------------------------------------------------------


def test_huge_attachment_is_never_read_whole() -> None:
    attachment = base64.encodebytes(b"\x00\xff" * (10 * 1024 * 1024))  # 20 MB raw, ~27 MB base64
    data = msg(
        b"From: a@example.com",
        b"Content-Type: multipart/mixed; boundary=b",
        b"",
        b"--b",
        b"Content-Type: text/plain",
        b"",
        b"see attached",
        b"--b",
        b'Content-Type: application/octet-stream; name="dump.bin"',
        b"Content-Transfer-Encoding: base64",
        b"",
        attachment,
        b"--b--",
    )
    parse_mail(data)  # warm up imports and caches
    started = time.perf_counter()
    mail = parse_mail(data)
    elapsed = time.perf_counter() - started
    assert elapsed < 0.05, f"parsing a 27 MB message took {elapsed:.3f} s"
    assert mail.size == len(data) > 27_000_000
    assert mail.body == "see attached"
    assert mail.attachments == 1


def test_size_of_a_prefix() -> None:
    assert parse_mail(SIMPLE[:200], size=123_456).size == 123_456


def test_body_text_is_capped() -> None:
    data = msg("Subject: long", "", "word " * (MAX_BODY_CHARS // 2))
    assert len(parse_mail(data).body) == MAX_BODY_CHARS


def test_huge_html_body_is_bounded() -> None:
    html = "<p>" + "<span>x</span> " * (MAX_MESSAGE_BYTES // 10) + "</p>"
    data = msg("Content-Type: text/html", "", html)
    started = time.perf_counter()
    mail = parse_mail(data)
    assert time.perf_counter() - started < 0.5
    assert 0 < len(mail.body) <= MAX_BODY_CHARS


# -- not a message ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"\r\n\r\n", b"   ", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", b"just some text\n\nmore"],
)
def test_not_a_message(data: bytes) -> None:
    with pytest.raises(MailParseError):
        parse_mail(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000))
def test_any_bytes_parse_or_raise_mail_parse_error(data: bytes) -> None:
    with contextlib.suppress(MailParseError):  # the only exception allowed
        parse_mail(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(NESTED)), st.binary(max_size=20))
def test_cut_or_corrupted_messages_still_parse(cut: int, junk: bytes) -> None:
    data = NESTED[:cut] + junk + NESTED[cut:]
    try:
        mail = parse_mail(data)
    except MailParseError:
        assert cut < len("From: a@example.com")  # only a broken first header may do this
        return
    assert len(mail.body) <= MAX_BODY_CHARS
