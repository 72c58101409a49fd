"""A grammar of SMTP client sessions, valid and broken, as hypothesis strategies.

A session may greet (EHLO/HELO) and authenticate first, then runs a random mix of: whole
transactions (MAIL, RCPT, DATA with a message), each command alone with valid and malformed
arguments (missing brackets, ``<>``, unknown or bad parameters, NUL and 8-bit bytes, long
lines), AUTH exchanges (PLAIN and LOGIN, initial response or after ``334``, cancelled, invalid
base64), DATA bodies with dot-stuffing, lone dots after bare LF (smuggling attempts), bare LF
and CR, NUL bytes, invalid UTF-8 and long lines, BDAT (not offered), RSET/NOOP/VRFY/HELP/QUIT,
STARTTLS at any point with plaintext pipelined behind it, random bytes, pauses, and writes
split anywhere. It ends with a probe (end any DATA, RSET, QUIT: ``221`` and the end of the
connection), or by hanging up, with or without RST.

Wrong passwords are left out: Dovecot delays every failed login by two seconds.
"""

from __future__ import annotations

import base64

from hypothesis import strategies as st

from tests.fuzzing.steps import Exchange, Pause, Probe, Send, Session, StartTls, Step

# A lone dot ends DATA if one is open; RSET and QUIT are answered in any other state.
PROBE = Probe(rb"\d\d\d ", b"\r\n.\r\nRSET\r\nQUIT\r\n", rb"221 ")

_REFUSAL = rb"[45]\d\d[ -]"
_EOLS = [b"\r\n", b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"]
_LOCAL = b"@localhost"


def _b64(text: bytes) -> bytes:
    return base64.b64encode(text)


@st.composite
def _split(draw: st.DrawFn, data: bytes, honest: bool = True) -> Send:
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=3))
    pause = draw(st.sampled_from([0.0, 0.0, 0.01, 0.05]))
    return Send(data, tuple(cuts), pause, honest)


@st.composite
def _line(draw: st.DrawFn, command: bytes) -> Send:
    return draw(_split(command + draw(st.sampled_from(_EOLS))))


def greeting() -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        b"EHLO fuzz.example", b"EHLO fuzz.example", b"HELO fuzz.example", b"EHLO", b"HELO",
        b"EHLO " + b"x" * 600, b"EHLO \x00\xff", b"ehlo [127.0.0.1]", b"EHLO a b c",
        b"EHLO \xc3\x28", b"EHLO [IPv6:::1]",
    ])  # fmt: skip


def auth(user: bytes, password: bytes) -> st.SearchStrategy[Step]:
    """AUTH that succeeds, in each of the ways a client may say it."""
    plain = _b64(b"\0" + user + b"\0" + password)
    login = _b64(user) + b"\r\n" + _b64(password) + b"\r\n"
    return st.sampled_from([
        Send(b"AUTH PLAIN " + plain + b"\r\n"),
        Exchange(b"AUTH PLAIN\r\n", rb"334", _REFUSAL + b"|235", plain + b"\r\n"),
        # The password goes pipelined behind the user name, before its "334".
        Exchange(b"AUTH LOGIN\r\n", rb"334", _REFUSAL + b"|235", login),
        Exchange(b"AUTH LOGIN " + _b64(user) + b"\r\n", rb"334", _REFUSAL + b"|235",
                 _b64(password) + b"\r\n"),
    ])  # fmt: skip


def broken_auth() -> st.SearchStrategy[Step]:
    """AUTH that fails without a wrong password (see the module docstring)."""
    return st.one_of(
        st.sampled_from([b"AUTH", b"AUTH BOGUS", b"AUTH PLAIN !!!", b"AUTH PLAIN =",
                         b"AUTH PLAIN " + _b64(b"no separators"), b"AUTH CRAM-MD5",
                         b"AUTH PLAIN " + b"A" * 3000, b"AUTH LOGIN \xff\xfe"]).map(
            lambda c: Send(c + b"\r\n")
        ),
        st.sampled_from([b"*\r\n", b"!!!\r\n", b"\r\n", b"*\n"]).map(
            lambda answer: Exchange(b"AUTH PLAIN\r\n", rb"334", _REFUSAL + b"|235", answer)
        ),
        st.sampled_from([b"*\r\n", b"%%%\r\n"]).map(
            lambda answer: Exchange(b"AUTH LOGIN\r\n", rb"334", _REFUSAL + b"|235", answer)
        ),
    )  # fmt: skip


def mail(user: bytes) -> st.SearchStrategy[bytes]:
    me = b"<" + user + _LOCAL + b">"
    return st.sampled_from([
        b"MAIL FROM:" + me, b"MAIL FROM:" + me, b"MAIL FROM:<>", b"MAIL FROM:" + me + b" SIZE=100",
        b"MAIL FROM:" + me + b" SIZE=abc", b"MAIL FROM:" + me + b" SIZE=99999999999999",
        b"MAIL FROM:" + me + b" BODY=8BITMIME", b"MAIL FROM:" + me + b" BODY=BINARYMIME",
        b"MAIL FROM:" + me + b" SMTPUTF8", b"MAIL FROM:" + me + b" AUTH=<>",
        b"MAIL FROM:" + me + b" FROB=1", b"MAIL FROM:" + user + _LOCAL, b"MAIL FROM:<\xff@x>",
        b"MAIL FROM:<a@b", b'MAIL FROM:<"a b"@localhost>', b"MAIL TO:<x@y>", b"MAIL",
        b"MAIL FROM:<x@[127.0.0.1]>", b"MAIL FROM: " + me, b"mail from:" + me,
        b"MAIL FROM:<" + b"a" * 400 + b"@localhost>", b"MAIL FROM:<\x00@localhost>",
    ])  # fmt: skip


def rcpt(user: bytes) -> st.SearchStrategy[bytes]:
    me = b"<" + user + _LOCAL + b">"
    return st.sampled_from([
        b"RCPT TO:" + me, b"RCPT TO:" + me, b"RCPT TO:<refuse-x@example.net>",
        b"RCPT TO:<elsewhere@example.net>", b"RCPT TO:<>", b"RCPT TO:<postmaster>",
        b"RCPT TO:" + me + b" NOTIFY=NEVER", b"RCPT TO:", b"RCPT TO:<\x00@x>", b"RCPT FROM:<x@y>",
        b"RCPT TO:<\xc3\xa9@localhost>", b"rcpt to:" + me, b"RCPT TO:" + me + b" ORCPT=x",
    ])  # fmt: skip


def bodies() -> st.SearchStrategy[bytes]:
    header = b"From: f@example.org\r\nTo: t@example.org\r\nSubject: fuzz\r\n\r\n"
    pieces = st.sampled_from([
        b"hello\r\n", b"..dot-stuffed line\r\n", b".lone dot line\r\n", b"\n.\n",
        b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"line with bare LF\n", b"bare CR\r", b"\x00\x00NUL\r\n",
        b"\xff\xfe invalid UTF-8\r\n", b"x" * 2000 + b"\r\n", b"y" * 100_000, b"\r\n",
        b"\n.\nMAIL FROM:<smuggled@localhost>\r\n", b"caf\xc3\xa9\r\n",
    ])  # fmt: skip
    return st.tuples(st.sampled_from([header, b""]), st.lists(pieces, max_size=6)).map(
        lambda t: t[0] + b"".join(t[1])
    )


@st.composite
def data(draw: st.DrawFn) -> Step:
    body = draw(bodies())
    end = draw(st.sampled_from([b"\r\n.\r\n", b"\r\n.\r\n", b"\r\n.\r\n", b".\r\n", b""]))
    return Exchange(b"DATA\r\n", rb"354", _REFUSAL, body + end)


@st.composite
def transaction(draw: st.DrawFn, user: bytes) -> list[Step]:
    """MAIL, one or two RCPT and DATA, pipelined or one by one."""
    commands = [draw(mail(user)), *draw(st.lists(rcpt(user), min_size=1, max_size=2))]
    if draw(st.booleans()):
        return [Send(b"".join(c + b"\r\n" for c in commands)), draw(data())]
    return [*(Send(c + b"\r\n") for c in commands), draw(data())]


def other() -> st.SearchStrategy[bytes]:
    return st.sampled_from([
        b"RSET", b"NOOP", b"NOOP x", b"VRFY x@localhost", b"EXPN list", b"HELP", b"HELP MAIL",
        b"QUIT", b"FROB", b"", b"\x00\x00", b"\xff\xfe MAIL", b"X" * 2000, b"DATA", b"DATA x",
        b"BDAT 10 LAST\r\n0123456789", b"BDAT 0 LAST", b"BDAT x", b"RSET x", b"TURN", b"STARTTLS x",
    ])  # fmt: skip


@st.composite
def starttls(draw: st.DrawFn) -> Step:
    injected = draw(st.sampled_from([b"", b"", b"NOOP\r\n", b"EHLO injected\r\n"]))
    return StartTls(
        b"STARTTLS\r\n" + injected,
        go=rb"220",
        stop=_REFUSAL,
        # Nothing is sent after the handshake before this is looked at: any reply would be
        # to the plaintext pipelined behind STARTTLS.
        injected_reply=rb"(?m)^\d\d\d" if injected else None,
    )


@st.composite
def random_bytes(draw: st.DrawFn) -> Step:
    return draw(_split(draw(st.binary(min_size=1, max_size=200))))


def steps(user: bytes, password: bytes) -> st.SearchStrategy[list[Step]]:
    one: st.SearchStrategy[Step] = st.one_of(
        greeting().flatmap(_line),
        auth(user, password),
        broken_auth(),
        mail(user).flatmap(_line),
        rcpt(user).flatmap(_line),
        data(),
        other().flatmap(_line),
        starttls(),
        random_bytes(),
        st.sampled_from([0.01, 0.1, 0.3]).map(Pause),
    )
    return st.one_of(one.map(lambda step: [step]), transaction(user))


@st.composite
def sessions(draw: st.DrawFn, user: str, password: str) -> Session:
    """One whole client session for ``user`` (see the module docstring)."""
    name, secret = user.encode(), password.encode()
    opening: list[Step] = []
    if draw(st.integers(0, 3)):
        opening.append(Send(b"EHLO fuzz.example\r\n"))
        if draw(st.integers(0, 2)):
            opening.append(draw(auth(name, secret)))
    body = draw(st.lists(steps(name, secret), min_size=1, max_size=8))
    ending = draw(st.sampled_from(["probe", "probe", "close", "reset", "half-close"]))
    return Session((*opening, *(step for group in body for step in group)), ending)
