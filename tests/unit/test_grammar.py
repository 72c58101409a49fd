"""Reading IMAP commands and responses: tags, names, mailboxes, user names, response codes."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.imap.grammar import (
    Atom,
    ParseError,
    Response,
    ResponseKind,
    Token,
    _parse_tokens,
    decode_mailbox,
    parse_command,
    parse_response,
    sasl_plain_user,
    tokenize,
)

# -- tokenize ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "tokens"),
    [
        (b"a1 NOOP\r\n", [Atom("a1"), Atom("NOOP")]),
        (b'a1 LOGIN "al ice" "p\\"w\\\\"\r\n', [Atom("a1"), Atom("LOGIN"), b"al ice", b'p"w\\']),
        (
            b"a1 STORE 1:* +FLAGS ($Junk (X Y))\r\n",
            [
                Atom("a1"),
                Atom("STORE"),
                Atom("1:*"),
                Atom("+FLAGS"),
                (Atom("$Junk"), (Atom("X"), Atom("Y"))),
            ],
        ),
        (b'a1 LIST "" %\r\n', [Atom("a1"), Atom("LIST"), b"", Atom("%")]),
        (b"a1 LOGIN {5}\r\nalice {2+}\r\npw\r\n", [Atom("a1"), Atom("LOGIN"), b"alice", b"pw"]),
        (b"a1 APPEND X ~{3}\r\n\x00\r\n\r\n", [Atom("a1"), Atom("APPEND"), Atom("X"), b"\x00\r\n"]),
        (
            b"* OK [UIDNEXT 5] x\r\n",
            [Atom("*"), Atom("OK"), (Atom("UIDNEXT"), Atom("5")), Atom("x")],
        ),
        (b"a1 X ) y\r\n", [Atom("a1"), Atom("X"), Atom("y")]),  # stray ")" is skipped
        (b'a1 X "unterminated\r\n', [Atom("a1"), Atom("X")]),
        (b"a1 X {5}\r\nabc", [Atom("a1"), Atom("X")]),  # literal cut off by a truncated head
        (b"a1 X {abc} y\r\n", [Atom("a1"), Atom("X")]),  # stops at what it cannot read
        (b"", []),
    ],
)
def test_tokenize(data: bytes, tokens: list[Token]) -> None:
    assert tokenize(data) == tokens


def test_system_flags_keep_their_backslash() -> None:
    """BUG: a flag such as ``\\Seen`` is one token (RFC 3501 flag = "\\" atom).

    "\\" is in the atom-ending specials, so it is skipped as a stray character and ``\\Seen``
    comes out as the keyword ``Seen``, indistinguishable from a user keyword of that name.
    """
    tokens = tokenize(b"a1 STORE 1 +FLAGS (\\Seen \\Deleted)\r\n")
    assert tokens[-1] == (Atom("\\Seen"), Atom("\\Deleted"))


def test_tokenize_atoms_are_atoms_and_strings_are_bytes() -> None:
    tokens = tokenize(b'a1 SELECT "INBOX"\r\n')
    assert isinstance(tokens[1], Atom)
    assert isinstance(tokens[2], bytes)


# -- parse_command -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "tag", "name", "mailbox"),
    [
        (b"a1 NOOP\r\n", "a1", "NOOP", None),
        (b"a1 noop\r\n", "a1", "NOOP", None),
        (b"A003 select inbox\r\n", "A003", "SELECT", "INBOX"),
        (b"a1 SELECT INBOX\n", "a1", "SELECT", "INBOX"),
        (b'a1 SELECT "Sent Items"\r\n', "a1", "SELECT", "Sent Items"),
        (b'a1 EXAMINE "inbox"\r\n', "a1", "EXAMINE", "INBOX"),
        (b"a1 SELECT {6}\r\nDrafts\r\n", "a1", "SELECT", "Drafts"),
        (b"a1 SELECT {6+}\r\nDrafts\r\n", "a1", "SELECT", "Drafts"),
        (b"a1 SELECT &AOk-t&AOk-\r\n", "a1", "SELECT", "\u00e9t\u00e9"),
        (b'a1 CREATE "Tom &- Jerry"\r\n', "a1", "CREATE", "Tom & Jerry"),
        (b"a1 DELETE Old\r\n", "a1", "DELETE", "Old"),
        (b"a1 SUBSCRIBE Lists/rust\r\n", "a1", "SUBSCRIBE", "Lists/rust"),
        (b"a1 UNSUBSCRIBE Lists/rust\r\n", "a1", "UNSUBSCRIBE", "Lists/rust"),
        (b"a1 RENAME Old New\r\n", "a1", "RENAME", "Old"),
        (b"a1 STATUS INBOX (MESSAGES UNSEEN)\r\n", "a1", "STATUS", "INBOX"),
        (b"a1 APPEND Drafts (\\Seen) {5}\r\nhello\r\n", "a1", "APPEND", "Drafts"),
        (b"a1 COPY 1:3 Archive\r\n", "a1", "COPY", "Archive"),
        (b'a1 MOVE 2 "Junk Mail"\r\n', "a1", "MOVE", "Junk Mail"),
        (b"a1 UID COPY 1:* &AOk-t&AOk-\r\n", "a1", "UID COPY", "\u00e9t\u00e9"),
        (b"a1 uid move 4 {7}\r\nArchive\r\n", "a1", "UID MOVE", "Archive"),
        (b"a1 UID FETCH 1:* (FLAGS)\r\n", "a1", "UID FETCH", None),
        (b"a1 uid store 1 +FLAGS (\\Deleted)\r\n", "a1", "UID STORE", None),
        (b"a1 UID\r\n", "a1", "UID", None),
        (b"a1 SELECT\r\n", "a1", "SELECT", None),  # no argument
        (b"a1 COPY 1:3\r\n", "a1", "COPY", None),  # no destination
        (b"a1 SELECT (INBOX)\r\n", "a1", "SELECT", None),  # a list is no mailbox
        (b"a1 FETCH 1 (FLAGS)\r\n", "a1", "FETCH", None),
    ],
)
def test_parse_command(head: bytes, tag: str, name: str, mailbox: str | None) -> None:
    command = parse_command(head)
    assert (command.tag, command.name, command.mailbox) == (tag, name, mailbox)


def test_parse_command_args_after_uid_prefix() -> None:
    command = parse_command(b"a7 UID FETCH 1:* (FLAGS)\r\n")
    assert command.args == (Atom("1:*"), (Atom("FLAGS"),))


def test_mailbox_starting_with_tilde_is_an_atom() -> None:
    """BUG: "~" is an ordinary ATOM-CHAR (RFC 3501/9051); only "~{" starts a literal8.

    The tokenizer treats any "~" as the start of a binary literal, so ``SELECT ~archive``
    (and ``SELECT ~peter/mail``, RFC 3501's own example) has no mailbox.
    """
    assert parse_command(b"a1 SELECT ~archive\r\n").mailbox == "~archive"


@pytest.mark.parametrize(
    ("head", "user"),
    [
        (b"a1 LOGIN alice secret\r\n", "alice"),
        (b"a1 login alice@example.com secret\r\n", "alice@example.com"),
        (b'a1 LOGIN "al ice" "secret"\r\n', "al ice"),
        (b'a1 LOGIN "a\\"b" x\r\n', 'a"b'),
        (b"a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n", "alice"),
        (b"a1 LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n", "alice"),
        (b"a1 LOGIN {6}\r\n\xc3\xa9mile pw\r\n", "\u00e9mile"),
        (b"a1 SELECT alice\r\n", None),
        (b"a1 LOGIN\r\n", None),
        (b"a1 LOGIN (alice) pw\r\n", None),
    ],
)
def test_login_user(head: bytes, user: str | None) -> None:
    assert parse_command(head).login_user == user


def test_login_never_keeps_the_password_as_user() -> None:
    command = parse_command(b"a1 LOGIN {5}\r\nalice {6}\r\nsecret\r\n")
    assert command.login_user == "alice"
    assert command.mailbox is None


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"\r\n",
        b"a1\r\n",
        b"a1 \r\n",
        b'"a1" NOOP\r\n',
        b'a1 "NOOP"\r\n',
        b"(a1) NOOP\r\n",
        b"a1 (NOOP)\r\n",
        b"{2}\r\na1 NOOP\r\n",
        b"\x00\x01\x02",
    ],
)
def test_parse_command_garbage(head: bytes) -> None:
    with pytest.raises(ParseError):
        parse_command(head)


# -- decode_mailbox ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        (b"INBOX", "INBOX"),
        (b"inbox", "INBOX"),
        (b"InBoX", "INBOX"),
        (b"INBOX/Sub", "INBOX/Sub"),
        (b"inbox.sub", "inbox.sub"),  # only INBOX itself is case-insensitive
        (b"Sent", "Sent"),
        (b"&AOk-t&AOk-", "\u00e9t\u00e9"),
        (b"&-", "&"),
        (b"Tom&-Jerry", "Tom&Jerry"),
        (b"&-&-", "&&"),
        (b"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"),
        (b"&2D3eAA-", "\U0001f600"),  # a surrogate pair
        (b"", ""),
        # malformed: kept as written rather than failing
        (b"&AOk", "&AOk"),  # no closing "-"
        (b"&A-", "&A-"),  # half a UTF-16 unit
    ],
)
def test_decode_mailbox(raw: bytes, name: str) -> None:
    assert decode_mailbox(raw) == name


# -- parse_response ----------------------------------------------------------------------------

U, T, C = ResponseKind.UNTAGGED, ResponseKind.TAGGED, ResponseKind.CONTINUATION


@pytest.mark.parametrize(
    ("line", "response"),
    [
        (
            b"* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] Dovecot ready.\r\n",
            Response(U, None, "OK", None, "CAPABILITY"),
        ),
        (b"* OK [UIDNEXT 5] Predicted next UID\r\n", Response(U, None, "OK", None, "UIDNEXT", 5)),
        (b"* OK [ALERT] Disk full\r\n", Response(U, None, "OK", None, "ALERT")),
        (b"* ok [alert] lower case\r\n", Response(U, None, "OK", None, "ALERT")),
        (b"* OK Still here\r\n", Response(U, None, "OK")),
        (b"* BYE Logging out\r\n", Response(U, None, "BYE")),
        (
            b"* PREAUTH [CAPABILITY IMAP4rev1] hi\r\n",
            Response(U, None, "PREAUTH", None, "CAPABILITY"),
        ),
        (b"* CAPABILITY IMAP4rev1 IDLE\r\n", Response(U, None, "CAPABILITY")),
        (b"* FLAGS (\\Seen \\Deleted)\r\n", Response(U, None, "FLAGS")),
        (b"* SEARCH\r\n", Response(U, None, "SEARCH")),
        (b"* 12 EXISTS\r\n", Response(U, None, "EXISTS", 12)),
        (b"* 0 RECENT\r\n", Response(U, None, "RECENT", 0)),
        (b"* 3 EXPUNGE\n", Response(U, None, "EXPUNGE", 3)),
        (b"* 7 FETCH (FLAGS (\\Seen) UID 9)\r\n", Response(U, None, "FETCH", 7)),
        (b"* 1 FETCH (BODY[] {5}\r\n", Response(U, None, "FETCH", 1)),
        (b"a1 OK [READ-WRITE] SELECT completed\r\n", Response(T, "a1", "OK", None, "READ-WRITE")),
        (
            b"a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n",
            Response(T, "a1", "OK", None, "CAPABILITY"),
        ),
        (
            b"A002 NO [AUTHENTICATIONFAILED] nope\r\n",
            Response(T, "A002", "NO", None, "AUTHENTICATIONFAILED"),
        ),
        (b"a3 bad Error in IMAP command\r\n", Response(T, "a3", "BAD")),
        (b"a4 OK\r\n", Response(T, "a4", "OK")),
        (b"a5 OK done [not a code]\r\n", Response(T, "a5", "OK")),
        (b"+ Ready for literal data\r\n", Response(C, None, "+")),
        (b"+\r\n", Response(C, None, "+")),
        (b"+ dGVzdA==\r\n", Response(C, None, "+")),
    ],
)
def test_parse_response(line: bytes, response: Response) -> None:
    assert parse_response(line) == response


@pytest.mark.parametrize("line", [b"", b"\r\n", b"*\r\n", b" OK\r\n", b"a1\r\n"])
def test_parse_response_garbage(line: bytes) -> None:
    with pytest.raises(ParseError):
        parse_response(line)


# -- sasl_plain_user ---------------------------------------------------------------------------


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


@pytest.mark.parametrize(
    ("line", "user"),
    [
        (b64(b"\0alice\0secret"), "alice"),
        (b64(b"\0alice\0secret") + b"\r\n", "alice"),
        (b64(b"\0alice@example.com\0p\xc3\xa4ss"), "alice@example.com"),
        (b64(b"admin\0alice\0secret"), "admin"),  # the authorization identity acted as
        (b64(b"alice\0alice\0secret"), "alice"),
        (b64(b"\0\xc3\xa9mile\0pw"), "\u00e9mile"),
        (b"!!!not base64!!!", None),
        (b"*", None),  # the client cancelled the exchange
        (b"", None),
        (b64(b"alice\0secret"), None),  # two fields
        (b64(b"a\0b\0c\0d"), None),  # four fields
        (b64(b"\0\0secret"), None),  # no identity at all
        (b64(b"\0alice\0secret")[:-1], None),  # bad padding
    ],
)
def test_sasl_plain_user(line: bytes, user: str | None) -> None:
    assert sasl_plain_user(line) == user


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"a1",
                b"A.2",
                b"x-y_z+",
                b"NOOP",
                b"select",
                b"UID",
                b"uid",
                b"INBOX",
                b"Foo.bar",
                b"&AOQ-",
                b"~x",
                b"(",
                b")",
                b"[",
                b"]",
                b'"q"',
                b"{3}",
                b"*",
                b"%",
                b"\\Seen",
                b"1:*",
            ]
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from([b" ", b"  ", b"\t"]),
    st.sampled_from([b"\r\n", b"\n", b"", b"\r"]),
)
def test_the_quick_read_of_plain_commands_reads_as_tokenize_does(
    words: list[bytes], blank: bytes, end: bytes
) -> None:
    head = blank.join(words) + end
    try:
        slow = _parse_tokens(head)
    except ParseError:
        with pytest.raises(ParseError):
            parse_command(head)
        return
    fast = parse_command(head)
    assert fast == slow
    assert [type(arg) for arg in fast.args] == [type(arg) for arg in slow.args]


def test_a_short_untagged_line_read_again_reads_the_same() -> None:
    line = b"* OK [UIDNEXT 101] Predicted next UID\r\n"
    first, again = parse_response(line), parse_response(bytes(bytearray(line)))
    assert first == again == Response(ResponseKind.UNTAGGED, None, "OK", None, "UIDNEXT", 101)
    long = b"* OK [ALERT] " + b"x" * 200 + b"\r\n"  # longer lines are read afresh each time
    assert parse_response(long) == Response(ResponseKind.UNTAGGED, None, "OK", None, "ALERT")
