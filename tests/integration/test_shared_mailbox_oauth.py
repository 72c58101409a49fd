"""A Microsoft 365 shared mailbox through commsproxy, against the real OAuth2 test bed.

The mail program logs in as ``ann@localhost/sales@localhost`` with ann's local password; ann
signs in (her refresh token, her local password) and commsproxy authenticates upstream with
her token as ``user=sales@localhost``, which is how Exchange Online opens a mailbox ann has Full
Access to, for reading (IMAP) and sending (SMTP). The bed's Dovecot checks exactly that: the
token is valid and its user was granted the mailbox (``shared_mailbox_dovecot``,
oauth_dovecot.py); a mailbox not granted is refused.

The proxy runs in this process: the IMAP and SMTP listeners with the OAuth2 logins, as
service.py wires them, but with a provider named ``microsoft365`` whose endpoints are the bed's
(a config cannot say that: the preset's endpoints are Microsoft's, and the ``user/shared`` form
is Microsoft's only).
"""

from __future__ import annotations

import asyncio
import dataclasses
import imaplib
import secrets
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from commsproxy.endpoints import ListenAddress, parse_endpoint
from commsproxy.oauth import OAuthProvider, SignIns, save_sign_in
from commsproxy.proxy.imap.listener import ImapListener, ImapListenerSettings
from commsproxy.proxy.imap.oauth_login import OAuthUpstreamLogin
from commsproxy.proxy.oauth_logins import OAuthLogins
from commsproxy.proxy.smtp.listener import SmtpListener, SmtpListenerSettings
from tests.integration.helpers import message
from tests.testbed.dovecot import Dovecot
from tests.testbed.file_keyring import FileKeyring
from tests.testbed.oauth_browser import Browser
from tests.testbed.oauth_dovecot import grant_full_access
from tests.testbed.oauth_server import OAuthServer, OAuthUser
from tests.testbed.oauth_signin import bed_provider, browser_sign_in

TIMEOUT = 30


@dataclass
class Shared:
    dovecot: Dovecot
    ann: OAuthUser
    sales: str  # a mailbox ann has Full Access to
    other: str  # one she has not
    local_password: str
    port: int
    provider: OAuthProvider
    smtp_port: int = 0

    def login_name(self, mailbox: str) -> str:
        return f"{self.ann.username}@localhost/{mailbox}@localhost"

    def read(self, mailbox: str, subject: str) -> bytes:
        """As a mail program: log in, select INBOX, fetch the subject's message headers."""
        with imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT) as conn:
            conn.login(self.login_name(mailbox), self.local_password)
            assert conn.select("INBOX")[0] == "OK"
            typ, found = conn.search(None, "SUBJECT", subject)
            assert typ == "OK"
            assert found[0], f"{subject} is not in {mailbox}'s INBOX"
            typ, data = conn.fetch(found[0].split()[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            return repr(data).encode()

    def send(self, mailbox: str, subject: str) -> None:
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=TIMEOUT) as smtp:
            smtp.login(self.login_name(mailbox), self.local_password)
            sender = f"{mailbox}@localhost"
            assert smtp.sendmail(sender, ["bob@example.org"], message(subject)) == {}

    def refused(self, mailbox: str) -> str:
        with (
            imaplib.IMAP4("127.0.0.1", self.port, timeout=TIMEOUT) as conn,
            pytest.raises(imaplib.IMAP4.error) as raised,
        ):
            conn.login(self.login_name(mailbox), self.local_password)
        return str(raised.value)


@pytest.fixture
async def shared(
    oauth_server: OAuthServer,
    shared_mailbox_dovecot: Dovecot,
    oauth_browser: Browser,
    tmp_path: Path,
) -> AsyncIterator[Shared]:
    dovecot = shared_mailbox_dovecot
    ann_name, _ = dovecot.new_user()
    sales, _ = dovecot.new_user()
    other, _ = dovecot.new_user()
    ann = oauth_server.add_user(ann_name, f"{ann_name}-sso-secret")
    grant_full_access(dovecot.root / "oauth2", ann_name, sales)

    client = oauth_server.register_client()
    provider = dataclasses.replace(bed_provider(oauth_server, client), name="microsoft365")
    backend = FileKeyring(tmp_path / "keyring.json")
    setup = Shared(dovecot, ann, sales, other, f"local-{secrets.token_hex(6)}", 0, provider)
    logins = [setup.login_name(sales), setup.login_name(other), setup.login_name(ann_name)]

    # `commsproxy login ann@localhost/sales@localhost`: ann signs in in the browser.
    tokens = await asyncio.to_thread(browser_sign_in, provider, ann, oauth_browser)
    save_sign_in(
        logins[0], provider, tokens, setup.local_password, directory=tmp_path, backend=backend
    )
    signins = SignIns(directory=tmp_path, backend=backend)
    upstream_login = OAuthUpstreamLogin(OAuthLogins.of(signins, dict.fromkeys(logins, provider)))
    upstream = parse_endpoint(f"imap://127.0.0.1:{dovecot.imap_port}", "imap")
    settings = ImapListenerSettings(
        upstream, dovecot.client_ssl_context(), ListenAddress("127.0.0.1", 0)
    )
    listener = ImapListener(settings, upstream_login=upstream_login)
    await listener.start()
    setup.port = listener.addresses[0].port
    submission = parse_endpoint(f"smtp+starttls://localhost:{dovecot.submission_port}", "smtp")
    smtp = SmtpListener(
        SmtpListenerSettings(
            submission, dovecot.client_ssl_context(), ListenAddress("127.0.0.1", 0)
        ),
        oauth=upstream_login.oauth,
    )
    await smtp.start()
    assert smtp.address is not None
    setup.smtp_port = smtp.address.port
    try:
        yield setup
    finally:
        await smtp.stop()
        await listener.stop()


async def test_the_user_reads_a_shared_mailbox_with_her_own_sign_in(shared: Shared) -> None:
    subject = f"for-sales-{secrets.token_hex(4)}"
    shared.dovecot.deliver(shared.sales, message(subject))
    assert subject.encode() in await asyncio.to_thread(shared.read, shared.sales, subject)

    # Her own mailbox, with the same sign-in and local password.
    own = f"for-ann-{secrets.token_hex(4)}"
    shared.dovecot.deliver(shared.ann.username, message(own))
    assert own.encode() in await asyncio.to_thread(shared.read, shared.ann.username, own)


async def test_the_user_sends_as_the_shared_mailbox(shared: Shared) -> None:
    subject = f"from-sales-{secrets.token_hex(4)}"
    await asyncio.to_thread(shared.send, shared.sales, subject)
    assert any(subject.encode() in m for m in shared.dovecot.relay_captured())


async def test_a_mailbox_she_was_not_granted_is_refused(shared: Shared) -> None:
    said = await asyncio.to_thread(shared.refused, shared.other)
    assert "[AUTHENTICATIONFAILED]" in said, said
    assert f"refused the access token for {shared.other}@localhost" in said, said
