"""The SMTP side: each client session is relayed, command by command, to the upstream server.

aiosmtpd parses the client's SMTP and calls the hooks of :class:`RelayHandler`; each hook does
the same step on an upstream connection (aiosmtplib, so the event loop never blocks) and returns
the upstream's own reply. Relaying MAIL, RCPT and DATA live, rather than accepting and sending
later, is what makes the promise hold: the client hears ``250`` only once the upstream has the
message, and a refused recipient or message reaches the client with the upstream's code and
text. Nothing is queued here, so nothing can be lost here.

A message is read into a spool (``spool.py``: memory up to 256 KiB, then an unlinked 0600 file)
and sent upstream from it block by block (``upstream_data.py``), so a big message is never
whole in memory; all sessions' messages share one cap, over which the client hears ``452
4.3.1``. Every refusal is an SMTP reply in words with an enhanced status code; an exception's
name or text goes to the log, never to the client.

AUTH is checked against the upstream at once (the client learns of a wrong password at AUTH,
not at DATA); the credentials live in the aiosmtpd session in memory only.

A login with ``auth = "oauth2"`` is different at AUTH only: commsproxy checks the local password
itself and logs in upstream with an access token (``oauth.py``). When no token can be had, the
client hears why in one line (``535 5.7.8`` to run ``commsproxy login``, ``454 4.7.0`` while the
provider throttles), logged once per login until it works again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, AnyStr

import aiosmtplib
from aiosmtpd.smtp import (
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    TLSSetupException,
    syntax,
)

from ...endpoints import Endpoint
from ...oauth import OAuthError, OAuthProvider, SignInNeeded, Throttled
from ...upstream.smtp import smtp_client
from ..oauth_logins import OAuthLogins
from ..routing import LoginRoutes, UpstreamServer
from .data_reader import DataOutcome, read_data
from .followup_address import FollowupAddress, read_followup_address, refusal
from .header_rewrite import RewrittenMessage, read_head, without_followup
from .oauth import LocalPassword, authenticate_with_token, check_local_password, oauth_reply
from .outgoing_check import SEND, Outgoing, OutgoingCheck, Verdict
from .spool import InFlight, Spool
from .upstream_data import Message, drop_link, send_data

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "NULL_SENDER", "RelayHandler", "RelaySMTP", "SentMessage"]

log = logging.getLogger("commsproxy.smtp")

SentHook = Callable[["SentMessage"], Awaitable[None]]

NULL_SENDER = "<>"  # MAIL FROM:<>, as aiosmtpd hands it on
DEFAULT_MAX_IN_FLIGHT = 200 << 20
OVER_CAP_REPLY = DataOutcome.OVER_CAP.reply
INTERNAL_ERROR = "451 4.3.0 commsproxy: internal error; the details are in its log"
NO_REAL_RECIPIENT = (
    "554 5.5.1 commsproxy: no recipient besides the follow-up address, which only sets when"
    " to follow up; add a real recipient"
)
DEFAULT_CHECK_TIMEOUT = 3.0  # seconds a look before sending may take; then it is sent anyway


class SentMessage:
    """A message the upstream accepted, for hooks that act on sent mail (filing).

    ``mail_from`` is empty for the null sender ``<>`` (bounces, receipts). The content is read
    from the spool when asked for; the spool's bytes stay counted in flight until the hook ends.
    """

    def __init__(
        self, user: str | None, envelope: Envelope, spool: Message, followup: str | None = None
    ) -> None:
        self.user = user
        self.mail_from: str = _sender(envelope)
        self.rcpt_tos: list[str] = list(envelope.rcpt_tos)
        self.size = spool.size
        self._spool = spool
        #: The local part of a ``...@followup.invalid`` recipient given with the message (kept
        #: out of ``rcpt_tos`` and never relayed), e.g. "2d"; None when there was none.
        self.followup: str | None = followup

    @property
    def content(self) -> bytes:
        return self._spool.read_all()


class _NoRoute(Exception):
    """With several logins, this session has no upstream to go to; ``reply`` says why."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def _sender(envelope: Envelope) -> str:
    sender = envelope.mail_from
    return "" if sender in (None, NULL_SENDER) else sender


def _user(conn: SMTP) -> str | None:
    credentials = conn.session.auth_data if conn.session is not None else None
    if isinstance(credentials, LoginPassword):
        return credentials.login.decode(errors="replace")
    return None


def _declared_size(mail_options: list[str]) -> int | None:
    """The size a client announced with ``MAIL FROM:<...> SIZE=n`` (RFC 1870), if any."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def _reply(err: aiosmtplib.SMTPResponseException) -> str:
    message = " ".join(err.message.splitlines()) or "refused"
    return f"{err.code} {message}"


async def _login_once(link: aiosmtplib.SMTP, credentials: LoginPassword) -> None:
    """One login attempt with one mechanism.

    aiosmtplib's ``login`` tries each mechanism in turn after a refusal, which would count one
    wrong password twice against the upstream's lockout limits.
    """
    user, password = credentials.login.decode(), credentials.password.decode()
    if not link.server_auth_methods:  # connect() greets with EHLO only when it did STARTTLS
        await link.ehlo()
    methods = link.server_auth_methods
    if "plain" in methods or "login" not in methods:
        await link.auth_plain(user, password)
    else:
        await link.auth_login(user, password)


def _accept_any(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    # aiosmtpd decodes PLAIN/LOGIN for us; whether the credentials are good is for the
    # upstream to say (or, for an OAuth2 login, the local password's hash), which
    # RelayHandler asks right after.
    return AuthResult(success=True, auth_data=data)


class RelayHandler:
    """aiosmtpd handler: one upstream connection per client connection, opened on demand.

    Links are kept per connection (the aiosmtpd protocol object), not per session: aiosmtpd
    replaces the session at STARTTLS, and a key such as ``id(session)`` may be reused by a
    later client once the old session is freed, which would hand it someone else's login.
    """

    def __init__(
        self,
        upstream: Endpoint,
        tls_context: ssl.SSLContext,
        *,
        timeout: float = 60.0,
        on_sent: SentHook | None = None,
        routes: LoginRoutes | None = None,
        oauth: OAuthLogins | None = None,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        spool_dir: Path | None = None,
    ) -> None:
        self.upstream = upstream
        self.tls_context = tls_context
        self.timeout = timeout
        self.on_sent = on_sent
        self.routes = routes  # several logins: the AUTH user name picks the server
        self.oauth = oauth  # the logins that sign in with OAuth2, and their tokens
        self._links: dict[SMTP, aiosmtplib.SMTP] = {}
        self._servers: dict[SMTP, Endpoint] = {}  # the server each connection went to, for logs
        # Links in the middle of an exchange (a command's reply, a message) for their client.
        self._busy: set[aiosmtplib.SMTP] = set()
        self._told: dict[str, str] = {}  # user -> the sign-in trouble already logged
        self.in_flight = InFlight(max_in_flight)  # all sessions' messages together
        self.spool_dir = spool_dir  # None: the system's temporary directory
        #: Asked about each message before it goes upstream (set by the service: collision).
        self.outgoing_check: OutgoingCheck | None = None
        self.check_timeout = DEFAULT_CHECK_TIMEOUT
        # The follow-up address's local part given in a transaction (first one wins).
        self._followups: weakref.WeakKeyDictionary[Envelope, str] = weakref.WeakKeyDictionary()

    def new_spool(self) -> Spool:
        return Spool(self.in_flight, self.spool_dir)

    def _provider_for(self, user: str) -> OAuthProvider | None:
        return self.oauth.provider_for(user) if self.oauth is not None else None

    def _server_for(self, credentials: LoginPassword | None) -> UpstreamServer:
        if self.routes is None:
            return UpstreamServer(self.upstream, self.tls_context)
        if credentials is None:
            raise _NoRoute("530 5.7.0 commsproxy: authenticate first (each login has its server)")
        server = self.routes.server_for(credentials.login.decode(errors="replace"))
        if server is None:
            raise _NoRoute("535 5.7.8 commsproxy: no [[login]] with an SMTP server for this user")
        return server

    def _where(self, conn: SMTP) -> Endpoint:
        return self._servers.get(conn, self.upstream)

    # -- the upstream link --------------------------------------------------------------------

    async def _connect(
        self, conn: SMTP, credentials: LoginPassword | None = None
    ) -> aiosmtplib.SMTP:
        """The upstream link of client connection ``conn``, opened (and logged in) if need be."""
        link = self._links.get(conn)
        if link is not None and link.is_connected:
            return link
        session = conn.session
        if credentials is None and session is not None:
            auth = session.auth_data
            credentials = auth if isinstance(auth, LoginPassword) else None
        server = self._server_for(credentials)
        where = self._servers[conn] = server.endpoint
        if credentials is not None:
            # An OAuth2 login needs a token first: without one, the upstream is not bothered
            # (Gmail counts connections per user).
            await self._token_for(credentials)
        link = smtp_client(where, server.tls, self.timeout)
        try:
            await link.connect()
            if credentials is not None:
                await self._log_in(link, credentials, where)
        except BaseException:
            # A refused login, or the client gone meanwhile (cancelled): nothing left behind.
            link.close()
            raise
        if conn.transport is None:
            # The client left meanwhile, and the cancellation that said so was lost (Python
            # 3.11's wait_for can drop one when its wait ends at the same moment).
            link.close()
            raise asyncio.CancelledError
        self._links[conn] = link
        return link

    async def _log_in(
        self, link: aiosmtplib.SMTP, credentials: LoginPassword, where: Endpoint
    ) -> None:
        user = credentials.login.decode(errors="replace")
        provider = self._provider_for(user)
        if provider is None or self.oauth is None:
            await _login_once(link, credentials)
            return
        tokens = self.oauth.signins.tokens(user, provider)
        await authenticate_with_token(link, tokens, user, provider, where)

    async def _token_for(self, credentials: LoginPassword) -> None:
        """Have an access token ready for an OAuth2 login (OAuthError if none can be had)."""
        user = credentials.login.decode(errors="replace")
        provider = self._provider_for(user)
        if provider is not None and self.oauth is not None:
            await self.oauth.signins.tokens(user, provider).get()

    def _oauth_refused(self, user: str, err: OAuthError) -> str:
        """The client's reply for a login without a usable token; logged once per trouble."""
        kind = type(err).__name__ if isinstance(err, SignInNeeded | Throttled) else str(err)
        if self._told.get(user) != kind:
            self._told[user] = kind
            log.warning("smtp: cannot send as %s: %s", user, err)
        return oauth_reply(err)

    async def _check_local(self, user: str, credentials: LoginPassword) -> str | None:
        """For an OAuth2 login: None when the local password is right, else the reply."""
        provider = self._provider_for(user)
        if self.oauth is None or provider is None:
            if self.oauth is not None and self.routes is None:
                # The only login signs in with OAuth2: a password for another name has no
                # server it may go to.
                log.info("smtp: AUTH for %s matches no [[login]]", user)
                return "535 5.7.8 commsproxy: no [[login]] for this user name"
            return None
        password = credentials.password.decode(errors="replace")
        try:
            verdict = await check_local_password(self.oauth.signins, user, provider, password)
        except OAuthError as err:
            return self._oauth_refused(user, err)
        if verdict is LocalPassword.UNSET:
            account = self.oauth.signins.identity(user, provider).account
            return self._oauth_refused(
                user, SignInNeeded(account, f"{account} has not signed in yet")
            )
        if verdict is LocalPassword.WRONG:
            log.info("smtp: wrong local password for %s", user)
            return "535 5.7.8 commsproxy: wrong user name or local password"
        return None

    async def close_upstream(self, conn: SMTP) -> None:
        """Close the upstream link of client connection ``conn``, if it has one.

        An idle link is ended with ``QUIT``; one in the middle of an exchange (its client left
        meanwhile) is dropped: mid-message a ``QUIT`` is only more of the message, which the
        upstream would never answer, and the link would stay open until its timeout.
        """
        self._servers.pop(conn, None)
        link = self._links.pop(conn, None)
        if link is None:
            return
        if link in self._busy or not link.is_connected:
            drop_link(link)
            return
        try:
            await link.quit()
        except Exception:  # whatever went wrong, the link must go
            link.close()
        except asyncio.CancelledError:
            drop_link(link)
            raise

    def _drop(self, conn: SMTP, link: aiosmtplib.SMTP) -> None:
        """Drop ``link`` at once, and forget it if it is still ``conn``'s."""
        if self._links.get(conn) is link:
            del self._links[conn]
            self._servers.pop(conn, None)
        drop_link(link)

    async def _exchange(
        self, conn: SMTP, link: aiosmtplib.SMTP, step: Callable[[aiosmtplib.SMTP], Awaitable[Any]]
    ) -> None:
        """Run ``step`` on ``link``; when the client leaves meanwhile, the link goes with it."""
        self._busy.add(link)
        try:
            await step(link)
        except asyncio.CancelledError:
            # The connection is ending (aiosmtpd cancels its session): whatever the upstream
            # is in the middle of stays unfinished, so the link cannot be ended politely.
            self._drop(conn, link)
            raise
        finally:
            self._busy.discard(link)

    async def _upstream_step(
        self, conn: SMTP, step: Callable[[aiosmtplib.SMTP], Awaitable[Any]]
    ) -> str | None:
        """Run one step upstream; None when it succeeded, else the reply for the client."""
        session = conn.session
        try:
            link = await self._connect(conn)
            await self._exchange(conn, link, step)
        except _NoRoute as err:
            return err.reply
        except OAuthError as err:  # reconnecting an OAuth2 login needs a token again
            auth = session.auth_data if session is not None else None
            user = auth.login.decode(errors="replace") if isinstance(auth, LoginPassword) else ""
            return self._oauth_refused(user, err)
        except aiosmtplib.SMTPResponseException as err:
            return _reply(err)
        except (aiosmtplib.SMTPException, OSError) as err:
            where = self._where(conn)
            if conn.transport is None:
                # The client left meanwhile and its link was dropped with it: no failure.
                log.info("smtp: upstream link dropped, its client left: %s", err)
                return "421 4.4.2 commsproxy: connection lost"
            log.error("smtp: upstream %s failed: %s", where, err)
            await self.close_upstream(conn)
            return f"451 4.4.1 commsproxy: upstream {where} unavailable; try again later"
        except ValueError as err:
            # aiosmtplib checks what goes into a command line (an address it cannot quote,
            # control characters, non-ASCII) before anything is sent.
            log.info("smtp: not relayed, the upstream command would be malformed: %s", err)
            return "501 5.5.2 commsproxy: malformed address or parameter"
        return None

    # -- aiosmtpd hooks -----------------------------------------------------------------------

    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._auth(server, await server.auth_PLAIN(server, args))

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._auth(server, await server.auth_LOGIN(server, args))

    async def _auth(self, server: SMTP, decoded: AuthResult) -> AuthResult:
        if not decoded.success or not isinstance(decoded.auth_data, LoginPassword):
            return decoded
        await self.close_upstream(server)
        try:
            decoded.auth_data.login.decode()
            decoded.auth_data.password.decode()
        except UnicodeDecodeError:
            log.info("smtp: AUTH refused: the user name or password is not UTF-8")
            message = "501 5.5.2 commsproxy: the user name and password must be UTF-8"
            return AuthResult(success=False, handled=False, message=message)
        user = decoded.auth_data.login.decode()
        refused = await self._check_local(user, decoded.auth_data)
        if refused is not None:
            return AuthResult(success=False, handled=False, message=refused)
        try:
            await self._connect(server, decoded.auth_data)
        except _NoRoute as err:
            log.info("smtp: AUTH for %s matches no [[login]] with an SMTP server", user)
            return AuthResult(success=False, handled=False, message=err.reply)
        except OAuthError as err:
            return AuthResult(success=False, handled=False, message=self._oauth_refused(user, err))
        except aiosmtplib.SMTPResponseException as err:
            log.info("smtp: upstream refused AUTH for %s: %s", user, err.code)
            return AuthResult(success=False, handled=False, message=_reply(err))
        except (aiosmtplib.SMTPException, OSError) as err:
            where = self._where(server)
            log.error("smtp: upstream %s failed during AUTH: %s", where, err)
            message = f"454 4.7.0 commsproxy: upstream {where} unavailable; try again later"
            return AuthResult(success=False, handled=False, message=message)
        if self._told.pop(user, None) is not None:
            log.info("smtp: %s can send again", user)
        log.info("smtp: %s authenticated", user)
        return AuthResult(success=True, auth_data=decoded.auth_data)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        declared = _declared_size(mail_options)
        if declared is not None and declared > self.in_flight.cap - self.in_flight.used:
            # Said before the data is sent, instead of after it (the cap may free up later).
            log.info("smtp: a message of %d bytes waits for room in flight", declared)
            return OVER_CAP_REPLY
        # aiosmtplib writes the null sender as "" (it takes "<>" for a malformed address).
        sender = "" if address == NULL_SENDER else address
        refused = await self._upstream_step(
            server, lambda link: link.mail(sender, options=mail_options)
        )
        if refused is not None:
            return refused
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        followup = read_followup_address(address)
        if followup is not None:
            return self._followup_rcpt(envelope, address, followup)
        refused = await self._upstream_step(
            server, lambda link: link.rcpt(address, options=rcpt_options)
        )
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    def _followup_rcpt(self, envelope: Envelope, address: str, found: FollowupAddress) -> str:
        """RCPT of a follow-up address: answered here, never relayed, kept out of the envelope."""
        if found.error is not None:
            log.info("smtp: follow-up address refused: %s", address)
            return refusal(found)
        local = found.local
        first = self._followups.setdefault(envelope, local)
        if first != local:
            log.info("smtp: a second follow-up address (%s) ignored; %s counts", local, first)
        return "250 2.1.5 OK (follow-up time noted, not relayed)"

    def followup_only(self, envelope: Envelope) -> bool:
        """The transaction's only recipient was a follow-up address."""
        return not envelope.rcpt_tos and envelope in self._followups

    def _as_sent(self, spool: Spool) -> tuple[Message, bytes]:
        """The message as it goes upstream (follow-up addresses out of its header), and its
        header block."""
        head = read_head(spool)
        rewritten = without_followup(head) if head else None
        if rewritten is None:
            return spool, head
        log.info("smtp: follow-up address taken out of the message's header")
        return RewrittenMessage(spool, len(head), rewritten), rewritten

    async def _check(self, outgoing: Outgoing) -> Verdict:
        """The outgoing check's verdict, bounded: a slow or failing check lets the message go."""
        if self.outgoing_check is None:
            return SEND
        try:
            return await asyncio.wait_for(self.outgoing_check.check(outgoing), self.check_timeout)
        except TimeoutError:
            log.warning(
                "smtp: the check before sending took over %g s; sent without it",
                self.check_timeout,
            )
        except Exception:
            log.exception("smtp: the check before sending failed; sent without it")
        return SEND

    async def _after_sent(self, verdict: Verdict) -> None:
        if verdict.after_sent is None:
            return
        try:
            await asyncio.wait_for(verdict.after_sent(), self.check_timeout)
        except TimeoutError:
            log.warning("smtp: the step after sending took over %g s", self.check_timeout)
        except Exception:
            log.exception("smtp: the step after sending failed")

    async def relay_message(self, conn: SMTP, envelope: Envelope, spool: Spool) -> str:
        """DATA: send the spooled message upstream; the client's reply."""
        replies: list[str] = []
        user = _user(conn)
        message, head = self._as_sent(spool)
        outgoing = Outgoing(
            user, _sender(envelope), tuple(envelope.rcpt_tos), head, message.read_all
        )
        verdict = await self._check(outgoing)
        if verdict.refusal is not None:
            log.info("smtp: a message kept back: %s", verdict.refusal)
            await self.reset_upstream(conn)
            return verdict.refusal

        async def send(link: aiosmtplib.SMTP) -> None:
            response = await send_data(link, message)
            replies.append(f"{response.code} {' '.join(response.message.splitlines())}")

        refused = await self._upstream_step(conn, send)
        if refused is not None:
            log.warning("smtp: upstream refused a message: %s", refused)
            return refused
        log.info("smtp: relayed %d bytes for %d recipients", message.size, len(envelope.rcpt_tos))
        await self._after_sent(verdict)
        if self.on_sent is not None:
            followup = self._followups.get(envelope)
            try:
                await self.on_sent(SentMessage(user, envelope, message, followup))
            except Exception:
                # The message is already sent: a failing hook must not turn that into an error.
                log.exception("smtp: after-send hook failed")
        return replies[0]

    async def reset_upstream(self, conn: SMTP) -> None:
        """End the upstream's transaction (RSET), as after a message refused here."""
        link = self._links.get(conn)
        if link is not None and link.is_connected:
            try:
                await self._exchange(conn, link, lambda link: link.rset())
            except aiosmtplib.SMTPException:
                await self.close_upstream(conn)

    async def close_all(self) -> None:
        """Close every upstream link (the listener is stopping)."""
        for link in list(self._links.values()):
            link.close()
        self._links.clear()
        self._servers.clear()

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.reset_upstream(server)
        return "250 OK"

    async def handle_QUIT(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self.close_upstream(server)
        return "221 Bye"


# RFC 3463 codes for refusals that come without one (aiosmtpd's own, a terse upstream's).
_ENHANCED = {
    "500": "5.5.2", "501": "5.5.4", "502": "5.5.1", "503": "5.5.1", "504": "5.5.4",
    "530": "5.7.0", "535": "5.7.8", "552": "5.3.4", "553": "5.1.3", "554": "5.7.0",
    "555": "5.5.4", "421": "4.3.0", "451": "4.3.0", "452": "4.3.1", "454": "4.7.0",
}  # fmt: skip
_REFUSAL = re.compile(r"^([45])\d\d ")
_HAS_ENHANCED = re.compile(r"^\d{3} [245]\.\d{1,3}\.\d{1,3}(?: |$)")


def with_enhanced_code(status: str) -> str:
    """``status`` with an enhanced status code after its reply code, when a refusal lacks one."""
    match = _REFUSAL.match(status)
    if match is None or _HAS_ENHANCED.match(status):
        return status
    code = status[:3]
    return f"{code} {_ENHANCED.get(code, match.group(1) + '.0.0')} {status[4:]}"


class CommandLineTooLong(Exception):
    """A command line (or an AUTH response) passed the line limit before its CRLF."""


class _CommandLineReader(asyncio.StreamReader):
    """The session's reader: an over-long line is refused at once instead of read to its end.

    aiosmtpd answers a command line over its limit only once the line's CRLF arrives, so a
    client sending megabytes without one hears nothing until the idle timeout. The DATA reader
    (``data_reader.py``) calls StreamReader's own readuntil, where a long line is dropped.
    """

    refused = False  # set on the first over-long line; the connection is closing then

    async def readuntil(self, separator: Any = b"\n") -> bytes:
        if self.refused:
            # Nothing more is read: the session waits here until the close cancels it.
            await asyncio.get_running_loop().create_future()
        try:
            return await super().readuntil(separator)
        except asyncio.LimitOverrunError:
            self.refused = True
            raise CommandLineTooLong from None


class RelaySMTP(SMTP):
    """aiosmtpd's server protocol, with what the relay changes in it.

    - DATA is read into a spool (``data_reader.py``, ``spool.py``) instead of a list in memory,
      and relayed from there; the in-flight cap answers ``452 4.3.1``.
    - A command line over the limit gets ``500 5.5.6`` and the connection is closed.
    - A refusal without an enhanced status code (aiosmtpd's own) gets one (RFC 3463).
    - An unexpected error is logged with its details and the client gets an SMTP reply in
      words (aiosmtpd's default puts the exception's class and text in a ``500 Error:``).
    - The upstream link is closed when the connection ends, however it ends, and before a
      STARTTLS handshake (the login does not carry over into TLS, RFC 3207 4.2); STARTTLS
      inside TLS gets ``503 5.5.1``.
    - A client going away (also mid-handshake, or while its reply is written) is logged as
      that, without a traceback.
    """

    def __init__(self, handler: RelayHandler, **kwargs: Any) -> None:
        super().__init__(handler, authenticator=_accept_any, **kwargs)
        self._relay = handler
        self._closing: set[asyncio.Task[None]] = set()

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The same reader (its buffer and transport stay), with readuntil refusing long lines.
        reader.__class__ = _CommandLineReader
        super()._cb_client_connected(reader, writer)

    async def push(self, status: AnyStr) -> None:
        try:
            if isinstance(status, str):
                await super().push(with_enhanced_code(status))
            else:
                await super().push(status)
        except ConnectionError as err:
            # The client went away while its reply was written: nobody is left to tell, and
            # the session ends here (aiosmtpd ends it on ConnectionResetError, quietly below).
            log.debug("smtp: client gone before its reply was written: %r", err)
            self._close()
            if isinstance(err, ConnectionResetError):
                raise
            raise ConnectionResetError(str(err)) from err

    async def _handle_client(self) -> None:
        # aiosmtpd re-raises a client's reset out of the session's task, which nobody awaits:
        # asyncio would log it as an ERROR ("Task exception was never retrieved").
        try:
            await super()._handle_client()
        except ConnectionError as err:
            log.debug("smtp: client gone: %r", err)

    async def handle_exception(self, error: Exception) -> str:
        peer = self.session.peer if self.session is not None else None
        if isinstance(error, TLSSetupException | ConnectionError | asyncio.IncompleteReadError):
            # The client left (or broke off the TLS handshake, or said EOF while a command was
            # still being answered): no failure of the proxy's. Closed at once: the session's
            # loop would otherwise read the same end again without ever yielding.
            cause = error.__cause__ or error
            log.info("smtp: %s went away: %s", peer, type(cause).__name__)
            self._close()
            return "421 4.4.2 commsproxy: connection lost"
        if isinstance(error, CommandLineTooLong):
            log.info("smtp: %s sent a line over %d bytes; closing", peer, self.line_length_limit)
            # After the reply is written (the caller pushes it), not before.
            self.loop.call_soon(self._close)
            return "500 5.5.6 commsproxy: line too long; closing the connection"
        log.error("smtp: session %s failed", peer, exc_info=error)
        return INTERNAL_ERROR

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        if self._tls_protocol is not None:
            # A handshake inside TLS is not SMTP (RFC 3207 4.2: STARTTLS is not offered after).
            await self.push("503 5.5.1 commsproxy: TLS is already active")
            return
        if not arg and self.tls_context:
            # RFC 3207 4.2: after TLS the session starts afresh, without its login; so does
            # the upstream link, logged in as the old session.
            await self._relay.close_upstream(self)
        await super().smtp_STARTTLS(arg)

    async def smtp_DATA(self, arg: str | None) -> None:
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        assert self.session is not None
        if self._relay.followup_only(self.envelope):
            await self.push(NO_REAL_RECIPIENT)
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 commsproxy: RCPT TO first")
            return
        if arg:
            await self.push("501 5.5.4 commsproxy: DATA takes no argument")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        with self._relay.new_spool() as spool:
            outcome = await read_data(
                self._reader,
                spool,
                size_limit=self.data_size_limit,
                line_limit=self.line_length_limit,
            )
            if outcome is DataOutcome.COMPLETE:
                status = await self._relay.relay_message(self, self.envelope, spool)
            else:
                log.info("smtp: message not taken (%s, %d bytes kept)", outcome.value, spool.size)
                await self._relay.reset_upstream(self)
                status = outcome.reply
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push(status)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # However the connection ended (QUIT, reset, timeout, failed TLS), its link goes.
        task = self.loop.create_task(self._relay.close_upstream(self))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
