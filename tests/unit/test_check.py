"""What `commsproxy check` prints for a login, from its findings (no server needed)."""

from __future__ import annotations

from commsproxy.check import (
    CAPABILITIES,
    Capability,
    LoginCheck,
    MailboxCheck,
    MailboxState,
    Outcome,
    ServerCheck,
    report,
)
from commsproxy.endpoints import parse_endpoint

IMAP = parse_endpoint("imaps://imap.example.com", "imap")
SMTP = parse_endpoint("smtp+starttls://smtp.example.com", "smtp")


def test_each_missing_capability_says_what_it_means() -> None:
    caps = [Capability(name, name not in ("MOVE", "IDLE"), w) for name, w in CAPABILITIES.items()]
    check = LoginCheck(
        "me@example.com",
        ServerCheck(IMAP, Outcome.OK, "logged in as me@example.com"),
        ServerCheck(SMTP, Outcome.OK, "AUTH accepted for me@example.com"),
        caps,
        [MailboxCheck("hold mailbox of batch 'later'", "Later", MailboxState.CREATED)],
    )
    lines = report(check)
    assert lines[0] == "me@example.com:"
    assert "  IMAP imap.example.com:993: ok: logged in as me@example.com" in lines
    assert "  server offers: UIDPLUS NAMESPACE ACL SPECIAL-USE CONDSTORE" in lines
    move = next(line for line in lines if line.startswith("  no MOVE: "))
    assert "UID COPY" in move
    assert "UID EXPUNGE of exactly those messages" in move
    idle = next(line for line in lines if line.startswith("  no IDLE: "))
    assert "every 2 s" in idle
    assert "  hold mailbox of batch 'later' Later: created" in lines
    assert not check.failed


def test_refused_and_unreachable_fail_skipped_does_not() -> None:
    refused = LoginCheck(
        "me", ServerCheck(IMAP, Outcome.REFUSED, "no"), ServerCheck(SMTP, Outcome.SKIPPED)
    )
    unreachable = LoginCheck(
        "me", ServerCheck(IMAP, Outcome.OK), ServerCheck(SMTP, Outcome.UNREACHABLE, "timeout")
    )
    skipped = LoginCheck(
        "me", ServerCheck(IMAP, Outcome.SKIPPED, "no password"), ServerCheck(None, Outcome.SKIPPED)
    )
    no_sign_in = LoginCheck(
        "me",
        ServerCheck(IMAP, Outcome.NO_CREDENTIALS, "not signed in"),
        ServerCheck(SMTP, Outcome.SKIPPED),
    )
    assert no_sign_in.failed
    assert "  IMAP imap.example.com:993: FAILED: not signed in" in report(no_sign_in)
    assert refused.failed
    assert unreachable.failed
    assert not skipped.failed
    assert "  SMTP smtp.example.com:587: FAILED (unreachable): timeout" in report(unreachable)
    assert "  IMAP imap.example.com:993: skipped: no password" in report(skipped)
    assert "  SMTP: skipped" in report(skipped)
