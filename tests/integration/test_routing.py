"""Two logins on two different servers behind one proxy: the user name picks the server.

A second private Dovecot plays the other provider (its own CA, its own users). Each login's
mail, triage and sending must stay on its own server; an unknown user name is refused without
any server seeing the password; a refused login leaves the client free to try another user.
"""

from __future__ import annotations

import base64
import imaplib
import shlex
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.helpers import (
    assert_password_not_logged,
    check_two_way_sync,
    client_env,
    output_of,
    require_program,
    run_client,
    write_mbsync_config,
)
from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import census, wait_until

TIMEOUT = 30


@pytest.fixture(scope="module")
def other() -> Iterator[Dovecot]:
    """The second provider: a Dovecot of its own, with its own CA."""
    with Dovecot(user_pool=8) as instance:
        yield instance


@dataclass
class Login:
    server: Dovecot
    local: str  # the user's name on its server
    name: str  # the name the client logs in with (the servers ignore the domain)
    password: str


@dataclass
class TwoServers:
    a: Login
    b: Login
    proxy: ProxyProcess


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _login_table(login: Login, imap: str, smtp: str, cafile: Path | None) -> str:
    command = _toml(f"printf %s {shlex.quote(login.password)}")
    ca = f'cafile = "{cafile}"\n' if cafile else ""
    return (
        f'[[login]]\nusername = "{login.name}"\npassword_command = {command}\n'
        f'upstream_imap = "{imap}"\nupstream_smtp = "{smtp}"\n{ca}\n'
    )


def _start(dovecot: Dovecot, other: Dovecot, tmp_path: Path, *, triage: bool) -> TwoServers:
    a_local, a_pw = dovecot.new_user()
    b_local, b_pw = other.new_user()
    # Both pools name users user0001...; the domains keep the two logins apart.
    a = Login(dovecot, a_local, f"{a_local}@a.example", a_pw)
    b = Login(other, b_local, f"{b_local}@b.example", b_pw)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[proxy]\nimap = "127.0.0.1:0"\nsmtp = "127.0.0.1:0"\n'
        f'state_dir = "{tmp_path / "state"}"\n\n'
        # One plain, one implicit TLS with its own CA: each login verifies its own server.
        + _login_table(
            a,
            f"imap://127.0.0.1:{dovecot.imap_port}",
            f"smtp+starttls://localhost:{dovecot.submission_port}",
            dovecot.ca_file,
        )
        + _login_table(
            b,
            f"imaps://localhost:{other.imaps_port}",
            f"smtp+starttls://localhost:{other.submission_port}",
            other.ca_file,
        )
        + '[web]\nenabled = false\n[triage]\nvip = ["boss@example.com"]\n'
        + f"enabled = {'true' if triage else 'false'}\n",
        encoding="utf-8",
    )
    proxy = ProxyProcess(["--config", str(config)]).start()
    if triage:
        for login in (a, b):
            assert proxy.wait_for_log(rf"triage\[{login.name}\]: watching INBOX", 20), (
                proxy.log_text()
            )
    return TwoServers(a, b, proxy)


@pytest.fixture
def two(dovecot: Dovecot, other: Dovecot, tmp_path: Path) -> Iterator[TwoServers]:
    setup = _start(dovecot, other, tmp_path, triage=True)
    try:
        yield setup
    finally:
        setup.proxy.stop()
    for login in (setup.a, setup.b):
        assert_password_not_logged(setup.proxy, login.name, login.password)


def _subjects(client: imaplib.IMAP4) -> set[str]:
    client.select("INBOX", readonly=True)
    _, data = client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    return {
        part[1].decode().split(":", 1)[1].strip()
        for part in data
        if isinstance(part, tuple) and b":" in part[1]
    }


def _vip(subject: str) -> bytes:
    return message(subject).replace(b"From: ", b"From: boss@example.com\r\nX-Was: ", 1)


def _literal_login(port: int, user: str, password: str) -> tuple[bytes, bytes]:
    """LOGIN with both strings as synchronizing literals, as some clients send them.

    Returns the answer to LOGIN and then to ``SELECT INBOX``.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        stream = sock.makefile("rwb")
        assert stream.readline().startswith(b"* OK [CAPABILITY ")
        user_bytes, pw_bytes = user.encode(), password.encode()
        stream.write(b"l1 LOGIN {%d}\r\n" % len(user_bytes))
        stream.flush()
        assert stream.readline().startswith(b"+")
        stream.write(user_bytes + b" {%d}\r\n" % len(pw_bytes))
        stream.flush()
        assert stream.readline().startswith(b"+")
        stream.write(pw_bytes + b"\r\n")
        stream.flush()
        login = _until_tagged(stream, b"l1")
        stream.write(b"s1 SELECT INBOX\r\n")
        stream.flush()
        return login, _until_tagged(stream, b"s1")


def _until_tagged(stream: socket.SocketIO | object, tag: bytes) -> bytes:
    lines = b""
    while True:
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, f"connection closed before {tag!r} completed: {lines!r}"
        lines += line
        if line.startswith(tag + b" "):
            return lines


def test_each_user_reaches_its_own_server(two: TwoServers) -> None:
    a, b, proxy = two.a, two.b, two.proxy
    a.server.deliver(a.local, _vip("for a, on the first server"))
    b.server.deliver(b.local, _vip("for b, on the second server"))

    with imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=TIMEOUT) as client:
        assert "AUTH=PLAIN" in client.capabilities
        client.login(a.name, a.password)
        assert wait_until(lambda: _subjects(client) == {"for a, on the first server"})

    # AUTHENTICATE PLAIN (imaplib waits for the "+" before its response).
    with imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=TIMEOUT) as client:
        client.authenticate("PLAIN", lambda _: f"\0{b.name}\0{b.password}".encode())
        assert wait_until(lambda: _subjects(client) == {"for b, on the second server"})

    login, select = _literal_login(proxy.imap_port, b.name, b.password)
    assert b"l1 OK" in login, login
    assert b"* 1 EXISTS" in select, select
    assert b"s1 OK" in select, select


def test_refusals_then_a_good_login_on_the_same_connection(two: TwoServers) -> None:
    a, b, proxy = two.a, two.b, two.proxy
    a.server.deliver(a.local, _vip("only a's"))
    with imaplib.IMAP4("127.0.0.1", proxy.imap_port, timeout=TIMEOUT) as client:
        with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED.*no \[\[login\]\]"):
            client.login("stranger@c.example", "whatever")
        # The second server refuses b's wrong password, with its own words.
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login(b.name, "wrong-" + b.password)
        client.login(a.name, a.password)
        assert wait_until(lambda: _subjects(client) == {"only a's"})
    log = proxy.log_text()
    assert "LOGIN for stranger@c.example matches no [[login]]" in log
    # Nothing of the stranger's attempt reached either server.
    for server in (a.server, b.server):
        assert "stranger" not in server.log_text()


def test_triage_holds_each_logins_mail_on_its_own_server(two: TwoServers) -> None:
    a, b = two.a, two.b
    news = b"List-Unsubscribe: <mailto:leave@news.example>\r\nPrecedence: bulk\r\n"
    ids = {}
    for login in (a, b):
        raw = message(f"newsletter for {login.local}")
        ids[login.name] = raw.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0].decode()
        login.server.deliver(login.local, news + raw)
    for login in (a, b):

        def held(login: Login = login) -> bool:
            counts = census(login.server, login.local, ("Later/Bulk",))
            return counts[ids[login.name]] == 1

        assert wait_until(held, 20), two.proxy.log_text()
        assert census(login.server, login.local, ("INBOX",))[ids[login.name]] == 0


def test_smtp_sends_through_the_auth_users_server(two: TwoServers) -> None:
    b, proxy = two.b, two.proxy
    recipient = b.server.new_user()[0]
    body = message("sent by b through its own provider")
    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=TIMEOUT) as smtp:
        smtp.login(b.name, b.password)
        assert smtp.sendmail(b.name, [f"{recipient}@localhost"], body) == {}
    assert wait_until(lambda: b.server.message_count(recipient) == 1, 20)
    assert not any(m.endswith(body) for m in two.a.server.relay_captured())

    with smtplib.SMTP("127.0.0.1", proxy.smtp_port, timeout=TIMEOUT) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.login("stranger@c.example", "whatever")
        assert refused.value.smtp_code == 535
        code, text = smtp.mail("someone@a.example")
        assert code == 530, text


def test_mbsync_through_routed_logins(dovecot: Dovecot, other: Dovecot, tmp_path: Path) -> None:
    """A real client on the second server's login, the relay only (no triage)."""
    mbsync = require_program("mbsync")
    setup = _start(dovecot, other, tmp_path, triage=False)
    try:
        b = setup.b
        maildir = tmp_path / "mail"
        maildir.mkdir()
        config = write_mbsync_config(
            tmp_path / "mbsyncrc",
            port=setup.proxy.imap_port,
            user=b.name,
            password=b.password,
            security="plain",
            ca_file=other.ca_file,
            maildir=maildir,
        )

        def sync() -> None:
            result = run_client(
                [mbsync, "-c", str(config), "-a"], env=client_env(tmp_path), timeout=60
            )
            assert result.returncode == 0, output_of(result)

        check_two_way_sync(other, b.local, b.password, maildir, sync)
    finally:
        setup.proxy.stop()
    assert_password_not_logged(setup.proxy, b.name, b.password)
    body = base64.b64encode(f"\0{b.name}\0{b.password}".encode()).decode()
    assert body not in setup.proxy.log_text()
