"""A grammar of IMAP client sessions, valid and broken, as hypothesis strategies.

A session optionally logs in first, then runs a random mix of: commands a mail program sends,
the same commands broken (missing or malformed arguments, unknown verbs, bad tags, NUL and
8-bit bytes, bare LF or CR line ends, long lines, a line over the proxy's bound), literals of
every kind (``{n}`` waiting for ``+`` or pipelined, ``{n+}``, ``~{n}`` with NULs) including
ones whose length lies and huge announced lengths, AUTHENTICATE exchanges (SASL-IR, answered
after ``+``, cancelled, invalid base64), IDLE with and without DONE, STARTTLS at any point with
plaintext pipelined behind it, random bytes, pauses, and writes split anywhere. It ends with a
LOGOUT probe (when the stream is still well framed), or by hanging up, with or without RST.

Wrong passwords are left out: Dovecot delays every failed login by two seconds.
"""

from __future__ import annotations

import base64

from hypothesis import strategies as st

from tests.fuzzing.steps import TAG, Exchange, Pause, Probe, Send, Session, StartTls, Step, numbered

PROBE = Probe(rb"\* (?:OK|PREAUTH|BYE)", b"\r\nDONE\r\nzz LOGOUT\r\n", rb"zz |\* BYE")

_VALID = [
    b"CAPABILITY", b"NOOP", b"CHECK", b"NAMESPACE", b'ID ("name" "fuzz" "version" "1")', b"ID NIL",
    b"ENABLE QRESYNC", b"ENABLE CONDSTORE", b"SELECT INBOX", b"EXAMINE INBOX", b'SELECT "INBOX"',
    b"SELECT INBOX (CONDSTORE)", b"SELECT Nonexistent", b"STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
    b'LIST "" "*"', b'LIST "" %', b'LSUB "" *', b'LIST (SPECIAL-USE) "" *',
    b'LIST "" * RETURN (STATUS (MESSAGES))', b"FETCH 1:* (FLAGS)", b"UID FETCH 1:* (UID FLAGS)",
    b"FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT)])", b"UID FETCH 1 (BODY.PEEK[]<0.200>)",
    b"FETCH 1:* (ENVELOPE)", b"UID SEARCH ALL", b"SEARCH UNSEEN", b"UID SEARCH SINCE 1-Jan-2020",
    b"STORE 1 +FLAGS (\\Seen)", b"UID STORE 1:* -FLAGS.SILENT (\\Seen)", b"CLOSE", b"UNSELECT",
    b"GETQUOTAROOT INBOX", b"MYRIGHTS INBOX", b"LOGOUT",
]  # fmt: skip
_BROKEN = [
    b"FROBNICATE", b"SELECT", b"LOGIN", b"LOGIN onlyone", b"LOGIN a b c", b"FETCH",
    b"FETCH 0:-1 (FLAGS)", b"FETCH 1 (((", b"FETCH 1 BODY[", b"FETCH * (BODY.PEEK[]<0.>)",
    b"FETCH 4294967296 FLAGS", b"UID", b"UID FROB 1", b"UID EXPUNGE", b"EXPUNGE extra",
    b"SEARCH CHARSET X-UNKNOWN ALL", b'SELECT "unterminated', b"SELECT \xff\xfe\xfd",
    b"SELECT INBOX\x00", b"STATUS INBOX (BOGUS)", b"STATUS INBOX", b"LIST", b'ID ("a")', b"ENABLE",
    b"APPEND", b"APPEND INBOX", b"APPEND INBOX (\\Seen", b"IDLE extra", b"DONE", b"AUTHENTICATE",
    b"AUTHENTICATE BOGUS", b"STARTTLS extra", b"SELECT INBOX (CONDSTORE", b'LIST "" "\\"',
    b"COPY 1", b"MOVE", b"NOOP \xc3\x28", b"CAPABILITY ((((((((((((((((((((((((((((",
    b"SEARCH " + b"(" * 200 + b"ALL" + b")" * 200, b'STORE 1 +FLAGS ("\\Seen)', b"XLIST",
    b"LOGOUT now", b"SELECT {5", b"SELECT ~{3}x", b"SELECT {-1}", b"SELECT {99999999999999999999}x",
]  # fmt: skip
_VERBS = [b"SELECT", b"FETCH", b"SEARCH", b"NOOP", b"FROB", b"LOGIN", b"STATUS", b"LIST"]
_TAGS = [b"a1", b"A002", b"t.3", b"x"]
_BAD_TAGS = [b"", b"*", b"+", b"a{", b"(", b"\xff", b"t\x00", b"%", b"a" * 300]
_EOLS = [b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"]
# Bytes that can go inside a command line without framing surprises.
_ARG_BYTES = st.binary(max_size=40).map(
    lambda b: b.translate(None, b"\r\n{}~").replace(b"\x00", b"\x01")
)


def _b64(text: bytes) -> bytes:
    return base64.b64encode(text)


@st.composite
def _split(draw: st.DrawFn, data: bytes, honest: bool = True) -> Send:
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=3))
    pause = draw(st.sampled_from([0.0, 0.0, 0.01, 0.05]))
    return Send(data, tuple(cuts), pause, honest)


def _tag(draw: st.DrawFn) -> bytes:
    return draw(st.sampled_from(_TAGS))


@st.composite
def simple_command(draw: st.DrawFn) -> Step:
    tag = draw(st.one_of(st.sampled_from(_TAGS), st.sampled_from(_BAD_TAGS)))
    body = draw(
        st.one_of(
            st.sampled_from(_VALID),
            st.sampled_from(_BROKEN),
            st.tuples(
                st.sampled_from([b"SELECT", b"FETCH", b"SEARCH", b"NOOP", b"FROB"]), _ARG_BYTES
            ).map(lambda pair: pair[0] + b" " + pair[1]),
        )
    )
    eol = draw(st.sampled_from(_EOLS))
    return draw(_split(tag + b" " + body + eol))


@st.composite
def long_line(draw: st.DrawFn) -> Step:
    size = draw(st.sampled_from([1_000, 8_192, 65_536, 300_000, 1_100_000]))
    return draw(_split(_tag(draw) + b" SEARCH " + b"1," * (size // 2) + b"1\r\n"))


@st.composite
def login(draw: st.DrawFn, user: bytes, password: bytes) -> Step:
    tag = _tag(draw)
    form = draw(st.sampled_from(["atom", "quoted", "nonsync", "sync", "sasl-ir", "sasl", "login"]))
    if form == "atom":
        return draw(_split(tag + b" LOGIN " + user + b" " + password + b"\r\n"))
    if form == "quoted":
        return draw(_split(tag + b' LOGIN "' + user + b'" "' + password + b'"\r\n'))
    if form == "nonsync":
        data = b"%s LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n" % (
            tag,
            len(user),
            user,
            len(password),
            password,
        )
        return draw(_split(data))
    if form == "sync":  # the user name after "+"; the password pipelined behind it, unasked
        then = b"%s {%d+}\r\n%s\r\n" % (user, len(password), password)
        return _exchange(b"%s LOGIN {%d}\r\n" % (TAG, len(user)), then)
    plain = _b64(b"\0" + user + b"\0" + password)
    if form == "sasl-ir":
        return draw(_split(tag + b" AUTHENTICATE PLAIN " + plain + b"\r\n"))
    if form == "sasl":
        return _exchange(TAG + b" AUTHENTICATE PLAIN\r\n", plain + b"\r\n")
    # The password's "+" is not awaited: it goes pipelined behind the user name.
    then = _b64(user) + b"\r\n" + _b64(password) + b"\r\n"
    return _exchange(TAG + b" AUTHENTICATE LOGIN\r\n", then)


def _exchange(data: bytes, then: bytes, honest: bool = True) -> Exchange:
    return Exchange(data, rb"\+", rb"\* BYE|" + TAG + rb" ", then, honest)


@st.composite
def authenticate(draw: st.DrawFn) -> Step:
    """SASL exchanges that end without a failed login (see the module docstring)."""
    answer = draw(st.sampled_from([b"*\r\n", b"!!!not base64\r\n", b"*\n", b"*" * 2000 + b"\r\n"]))
    return _exchange(TAG + b" AUTHENTICATE PLAIN\r\n", answer)


@st.composite
def literal(draw: st.DrawFn) -> Step:
    tag = _tag(draw)
    body = draw(
        st.one_of(
            st.just(b"Subject: fuzz\r\nFrom: f@example.org\r\n\r\nhello\r\n"),
            st.binary(max_size=300),
            st.sampled_from([b"", b"\r\n", b"{5}\r\n", b"a1 LOGOUT\r\n", b"\x00" * 64]),
        )
    )
    command = draw(
        st.sampled_from([b"APPEND INBOX", b"APPEND INBOX (\\Seen)", b"APPEND Nonexistent",
                         b"SEARCH CHARSET UTF-8 SUBJECT", b"SELECT", b"LOGIN fuzz"])
    )  # fmt: skip
    kind = draw(st.sampled_from(["{%d}", "{%d+}", "~{%d}", "~{%d+}"]))
    size = len(body)
    lie = draw(st.sampled_from(["none", "none", "none", "short", "long", "huge"]))
    honest = lie == "none"
    if lie == "short":
        size += draw(st.integers(1, 100))
    elif lie == "long":
        size = max(0, size - draw(st.integers(1, 100)))
    elif lie == "huge":
        size = draw(st.sampled_from([999_999_999, 64 << 20, (64 << 20) + 1, 2**63]))
        body = body[:100]
    head = tag + b" " + command + b" " + (kind % size).encode() + b"\r\n"
    if "+" in kind:
        return draw(_split(head + body + b"\r\n", honest))
    if draw(st.booleans()):  # pipelined without waiting for "+", as a broken client might
        return draw(_split(head + body + b"\r\n", honest=False))
    return _exchange(head.replace(tag, TAG, 1), body + b"\r\n", honest)


@st.composite
def idle(draw: st.DrawFn) -> Step:
    done = draw(st.sampled_from([b"DONE\r\n", b"done\r\n", b"DONE extra\r\n", b"", b"NOOP\r\n"]))
    if draw(st.booleans()):
        return _exchange(TAG + b" IDLE\r\n", done)
    return draw(_split(_tag(draw) + b" IDLE\r\n" + done))


@st.composite
def starttls(draw: st.DrawFn) -> Step:
    injected = draw(st.sampled_from([b"", b"", b"inj NOOP\r\n", b"inj LOGIN x y\r\n"]))
    return StartTls(
        TAG + b" STARTTLS\r\n" + injected,
        go=TAG + rb" OK",
        stop=rb"\* BYE|" + TAG + rb" ",
        injected_reply=rb"^inj " if injected else None,
    )


@st.composite
def random_bytes(draw: st.DrawFn) -> Step:
    data = draw(st.binary(min_size=1, max_size=200))
    # Random bytes may announce a literal ("{9}\r\n") and swallow what follows.
    return draw(_split(data, honest=False))


def steps(user: bytes, password: bytes) -> st.SearchStrategy[Step]:
    return st.one_of(
        simple_command(),
        simple_command(),
        simple_command(),
        login(user, password),
        literal(),
        idle(),
        authenticate(),
        starttls(),
        long_line(),
        random_bytes(),
        st.sampled_from([0.01, 0.1, 0.3]).map(Pause),
    )


@st.composite
def sessions(draw: st.DrawFn, user: str, password: str) -> Session:
    """One whole client session for ``user`` (see the module docstring)."""
    name, secret = user.encode(), password.encode()
    opening: list[Step] = [draw(login(name, secret))] if draw(st.booleans()) else []
    if opening and draw(st.booleans()):
        opening.append(Send(b"s0 SELECT INBOX\r\n"))
    body = draw(st.lists(steps(name, secret), min_size=1, max_size=10))
    ending = draw(st.sampled_from(["probe", "probe", "close", "reset", "half-close"]))
    return Session(numbered([*opening, *body]), ending)
