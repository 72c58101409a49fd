"""The body digest that tells a true duplicate from another message with the same Message-ID."""

from __future__ import annotations

from commsproxy.triage.body_digest import body_of, message_digest, text_digest

HEADER = b"From: a@example.org\r\nMessage-ID: <x@example.org>\r\n"


def test_the_same_body_under_another_header_has_the_same_digest() -> None:
    delivered = b"Received: from mx\r\nDelivered-To: bob\r\n" + HEADER + b"\r\nHello.\r\n"
    sent = HEADER + b"\r\nHello.\r\n"
    assert message_digest(delivered) == message_digest(sent)
    assert message_digest(sent) == text_digest(b"Hello.\r\n")  # as BODY[TEXT] gives it


def test_line_ends_and_trailing_blank_lines_do_not_count_but_the_text_does() -> None:
    assert text_digest(b"a\r\nb\r\n\r\n") == text_digest(b"a\nb")
    assert text_digest(b"a\r\nb") != text_digest(b"a\r\nc")
    assert text_digest(b"a b") != text_digest(b"ab")


def test_body_of_a_message_without_a_blank_line_is_empty() -> None:
    assert body_of(HEADER) == b""
    assert body_of(b"Subject: x\n\nbody\n") == b"body\n"
