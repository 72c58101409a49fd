"""XOAUTH2 and OAUTHBEARER initial responses, error challenges, shared mailboxes."""

from __future__ import annotations

import base64

import pytest

from commsproxy.oauth.identity import mailbox_identity
from commsproxy.oauth.sasl import (
    OAUTHBEARER,
    OAUTHBEARER_ABORT,
    XOAUTH2,
    XOAUTH2_ABORT,
    choose_mechanism,
    oauthbearer,
    parse_error_challenge,
    xoauth2,
)
from commsproxy.oauth.tokens import Secret

TOKEN = Secret("EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA")


def test_xoauth2_matches_the_documented_example() -> None:
    # Microsoft's IMAP/SMTP OAuth page gives this user, token and base64 result.
    encoded = xoauth2("test@contoso.onmicrosoft.com", TOKEN)
    assert encoded == (
        b"dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZw"
        b"VUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="
    )
    assert base64.b64decode(encoded) == (
        b"user=test@contoso.onmicrosoft.com\x01auth=Bearer " + TOKEN.reveal().encode() + b"\x01\x01"
    )


def test_oauthbearer_rfc7628() -> None:
    raw = base64.b64decode(
        oauthbearer("user@example.com", Secret("vF9dft4qmT"), "server.example.com", 143)
    )
    assert raw == (
        b"n,a=user@example.com,\x01host=server.example.com\x01port=143"
        b"\x01auth=Bearer vF9dft4qmT\x01\x01"
    )


def test_oauthbearer_escapes_the_authzid() -> None:
    raw = base64.b64decode(oauthbearer("a,b=c@x", Secret("t"), "h", 993))
    assert raw.startswith(b"n,a=a=2Cb=3Dc@x,\x01")


def test_error_challenges() -> None:
    google = base64.b64encode(
        b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
    )
    parsed = parse_error_challenge(google)
    assert parsed is not None
    assert (parsed.status, parsed.schemes, parsed.scope) == (
        "401",
        "bearer",
        "https://mail.google.com/",
    )
    assert parsed.token_rejected
    rfc = parse_error_challenge(
        '{"status":"invalid_token","scope":"example_scope",'
        '"openid-configuration":"https://example.com/.well-known/openid-configuration"}'
    )
    assert rfc is not None
    assert rfc.token_rejected
    assert rfc.openid_configuration == "https://example.com/.well-known/openid-configuration"
    scope = parse_error_challenge(base64.b64encode(b'{"status":"insufficient_scope"}'))
    assert scope is not None
    assert not scope.token_rejected
    assert parse_error_challenge(b"not json") is None
    assert parse_error_challenge(base64.b64encode(b"[1]")) is None
    assert OAUTHBEARER_ABORT == b"AQ=="
    assert XOAUTH2_ABORT == b""


@pytest.mark.parametrize(
    ("username", "provider", "sign_in", "mailbox", "shared"),
    [
        (
            "ann@contoso.com/sales@contoso.com",
            "microsoft365",
            "ann@contoso.com",
            "sales@contoso.com",
            True,
        ),
        ("Ann@Contoso.com", "microsoft365", "Ann@Contoso.com", "Ann@Contoso.com", False),
        (
            "ann@gmail.com/x@gmail.com",
            "gmail",
            "ann@gmail.com/x@gmail.com",
            "ann@gmail.com/x@gmail.com",
            False,
        ),
        ("ann@contoso.com/", "microsoft365", "ann@contoso.com/", "ann@contoso.com/", False),
    ],
)
def test_shared_mailbox_identity(
    username: str, provider: str, sign_in: str, mailbox: str, shared: bool
) -> None:
    identity = mailbox_identity(username, provider)
    assert (identity.sign_in, identity.mailbox, identity.shared) == (sign_in, mailbox, shared)
    assert identity.account == sign_in.lower()


def test_shared_mailbox_authenticates_as_the_shared_mailbox_with_the_users_token() -> None:
    identity = mailbox_identity("ann@contoso.com/sales@contoso.com", "microsoft365")
    raw = base64.b64decode(xoauth2(identity.mailbox, TOKEN))
    assert raw.startswith(b"user=sales@contoso.com\x01auth=Bearer ")
    assert identity.account == "ann@contoso.com"  # the token and local password are Ann's


def test_xoauth2_is_chosen_where_offered_else_oauthbearer() -> None:
    assert choose_mechanism(["PLAIN", "oauthbearer", "xoauth2"]) is XOAUTH2
    assert choose_mechanism(["OAUTHBEARER", "PLAIN"]) is OAUTHBEARER
    assert choose_mechanism(["PLAIN", "LOGIN"]) is None
    token = Secret("tok")
    assert XOAUTH2.response("a@b", token, "h", 1) == xoauth2("a@b", token)
    assert OAUTHBEARER.response("a@b", token, "h", 1) == oauthbearer("a@b", token, "h", 1)
