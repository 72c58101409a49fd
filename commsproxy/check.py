"""``commsproxy check``: log in to each server as ``run`` will, and say what will work and what not.

For every ``[[login]]`` it logs in to IMAP with the real credentials (the ``password_command``'s
password, run off the event loop; a password typed in when there is none; or an OAuth2 access
token of the login's sign-in), reads what the server offers that commsproxy relies on and says,
for each missing piece, what that means for the user. It makes sure the hold mailboxes (and the
account folders' root, when accounts are configured) exist or can be created: a missing one is
created, as triage would at its start, and left there; nothing that existed is touched, nothing
is ever deleted. Then it logs in to SMTP with the same credentials (AUTH PLAIN/LOGIN, or
XOAUTH2/OAUTHBEARER through the SMTP side's own exchange) and logs out.

The result is data (:class:`LoginCheck`); the CLI prints it. Secrets are never in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import aiosmtplib

from .config import Config, LoginConfig
from .credentials import CredentialError, password_from_command
from .endpoints import Endpoint, client_tls_context
from .models.check import ModelCheck, check_models
from .oauth import AccessTokens, OAuthError, OAuthProvider, SignIns, mailbox_identity
from .oauth.password import has_local_password
from .oauth.vault import EncryptedFileStore
from .proxy.smtp.oauth import authenticate_with_token
from .triage.filer import accounts_root
from .triage.signin import connect_oauth2
from .triage.upstream import LoginRefused, Upstream, UpstreamImapError, connect
from .upstream.smtp import smtp_client

__all__ = [
    "CAPABILITIES",
    "Capability",
    "LoginCheck",
    "MailboxCheck",
    "MailboxState",
    "Outcome",
    "ServerCheck",
    "check_config",
    "check_login",
    "report",
]

#: What commsproxy relies on, and what the user gets without it.
CAPABILITIES: dict[str, str] = {
    "IDLE": "new mail is noticed by triage's look at INBOX every 2 s instead of at once, "
    "and your mail program checks for mail on its own timer",
    "MOVE": "held mail is moved with UID COPY, \\Deleted and UID EXPUNGE of exactly those "
    "messages (never a plain EXPUNGE): three steps instead of one",
    "UIDPLUS": "the server does not say where moved mail went; without MOVE as well, nothing "
    "can be held, because only UID EXPUNGE removes exactly the moved messages",
    "NAMESPACE": "account folders go under a private 'Accounts' unless [accounts] root names "
    "a shared place, and reading your history with senders cannot tell shared folders from "
    "yours",
    "ACL": "new account folders are not shared with [accounts] share_with: share them on the "
    "server yourself",
    "SPECIAL-USE": "Sent, Trash, Junk and Drafts are recognised by their names only (as "
    "'Sent', 'Sent Items', ...), so your history with senders may miss a Sent folder "
    "with another name",
    "CONDSTORE": "your mail program re-reads the flags of a whole folder to see what changed "
    "elsewhere, which is slower on big folders",
}


class Outcome(Enum):
    OK = "ok"
    REFUSED = "refused"  # the server said no to these credentials
    UNREACHABLE = "unreachable"  # no connection, TLS failed, no answer in time
    NO_CREDENTIALS = "no credentials"  # the password_command failed, or no OAuth2 sign-in
    SKIPPED = "skipped"  # not tried: no password to try, or nothing configured


class MailboxState(Enum):
    EXISTS = "exists"
    CREATED = "created"
    REFUSED = "cannot be created"


@dataclass(frozen=True)
class Capability:
    name: str
    present: bool
    without: str  # what the user gets when it is missing


@dataclass(frozen=True)
class MailboxCheck:
    what: str  # "hold mailbox of batch 'later'", "account folders' root"
    name: str  # in the server's syntax
    state: MailboxState
    detail: str = ""


@dataclass(frozen=True)
class ServerCheck:
    endpoint: Endpoint | None
    outcome: Outcome
    detail: str = ""


@dataclass
class LoginCheck:
    """What one ``[[login]]``'s check found."""

    username: str
    imap: ServerCheck
    smtp: ServerCheck
    capabilities: list[Capability] = field(default_factory=list)
    mailboxes: list[MailboxCheck] = field(default_factory=list)
    models: list[ModelCheck] = field(default_factory=list)  # what triage for it would load

    @property
    def failed(self) -> bool:
        """The login cannot work as configured: refused or unreachable, IMAP or SMTP, or a
        model triage needs cannot be loaded (then ``run`` does not start)."""
        bad = (Outcome.REFUSED, Outcome.UNREACHABLE, Outcome.NO_CREDENTIALS)
        model_failed = any(not model.ok for model in self.models)
        return self.imap.outcome in bad or self.smtp.outcome in bad or model_failed

    @property
    def missing(self) -> list[Capability]:
        return [cap for cap in self.capabilities if not cap.present]


#: Asked for a password the config does not give; returns None when no one can answer.
Ask = Callable[[str], str | None]


@dataclass(frozen=True)
class _Credentials:
    password: str | None = None
    tokens: AccessTokens | None = None
    mailbox: str = ""  # the SASL user of an OAuth2 login (a shared mailbox for user/shared)


async def check_config(
    config: Config,
    *,
    ask: Ask | None = None,
    signins: SignIns | None = None,
    seconds: float = 15.0,
) -> list[LoginCheck]:
    """Check every ``[[login]]`` in turn (one at a time: prompts must not interleave)."""
    if signins is None and any(login.oauth is not None for login in config.logins):
        signins = await asyncio.to_thread(SignIns)
    checks = [
        await check_login(config, login, ask=ask, signins=signins, seconds=seconds)
        for login in config.logins
    ]
    # Loaded once (scikit-learn and a model take a second or two), shown for every login.
    models = await asyncio.to_thread(check_models, config) if checks else []
    for check in checks:
        check.models = models
    return checks


async def check_login(
    config: Config,
    login: LoginConfig,
    *,
    ask: Ask | None = None,
    signins: SignIns | None = None,
    seconds: float = 15.0,
) -> LoginCheck:
    username = login.username or ""
    smtp_skipped = ServerCheck(login.upstream_smtp, Outcome.SKIPPED, "no upstream_smtp")
    result = LoginCheck(username, ServerCheck(login.upstream_imap, Outcome.SKIPPED), smtp_skipped)
    if not username:
        result.imap = ServerCheck(
            login.upstream_imap,
            Outcome.SKIPPED,
            'no username in this [[login]]: add username = "..." to check it',
        )
        return result
    credentials, why_not, outcome = await _credentials(login, ask, signins)
    if credentials is None:
        result.imap = ServerCheck(login.upstream_imap, outcome, why_not)
        if login.upstream_smtp is not None:
            result.smtp = ServerCheck(login.upstream_smtp, Outcome.SKIPPED, "see IMAP")
        return result
    tls = client_tls_context(login.cafile)
    await _check_imap(config, login, credentials, tls, seconds, result)
    smtp = login.upstream_smtp
    if smtp is not None and result.imap.outcome is Outcome.REFUSED:
        # The same credentials again would only count once more against a lockout limit.
        why = "not tried: the IMAP server refused the same credentials"
        result.smtp = ServerCheck(smtp, Outcome.SKIPPED, why)
    elif smtp is not None:
        result.smtp = await _check_smtp(login, smtp, credentials, tls, seconds)
    return result


async def _credentials(
    login: LoginConfig, ask: Ask | None, signins: SignIns | None
) -> tuple[_Credentials | None, str, Outcome]:
    """The login's credentials, or None, why there are none, and whether that is a failure."""
    user = login.username or ""
    if login.oauth is not None:
        if signins is None:
            return None, "OAuth2 sign-ins are not available here", Outcome.SKIPPED
        return await _token(login.oauth, user, ask, signins)
    if login.password_command:
        try:
            password = await password_from_command(login.password_command)
        except CredentialError as err:  # triage would fail the same way
            return None, str(err), Outcome.NO_CREDENTIALS
        return _Credentials(password=password), "", Outcome.OK
    where = login.upstream_imap.host
    typed = await asyncio.to_thread(ask, f"Password of {user} on {where}") if ask else None
    if not typed:
        # Not a failure: run logs in with the password the mail program gives it.
        why = (
            "no password_command in this [[login]]: add one, or run `commsproxy check` in a "
            "terminal to type the password"
        )
        return None, why, Outcome.SKIPPED
    return _Credentials(password=typed), "", Outcome.OK


async def _token(
    provider: OAuthProvider, user: str, ask: Ask | None, signins: SignIns
) -> tuple[_Credentials | None, str, Outcome]:
    """An OAuth2 login's access token, from its sign-in."""
    login_hint = f"run `commsproxy login {user}`"
    account = signins.identity(user, provider).account
    if not await asyncio.to_thread(has_local_password, signins.directory, account):
        return None, f"{user} has not signed in yet: {login_hint}", Outcome.NO_CREDENTIALS
    store = signins.store
    if isinstance(store, EncryptedFileStore) and store.locked and ask is not None:
        # The refresh token is encrypted with the local password: it unlocks the file.
        password = await asyncio.to_thread(ask, f"Local password of {user} (commsproxy)")
        if password and not await asyncio.to_thread(
            signins.check_password, user, provider, password
        ):
            why = f"wrong local password (the one `commsproxy login` set for {user})"
            return None, why, Outcome.NO_CREDENTIALS
    tokens = signins.tokens(user, provider)
    try:
        await tokens.get()
    except OAuthError as err:
        why = str(err) if "commsproxy login" in str(err) else f"{err}: {login_hint}"
        return None, f"no access token: {why}", Outcome.NO_CREDENTIALS
    mailbox = mailbox_identity(user, provider.name).mailbox
    return _Credentials(tokens=tokens, mailbox=mailbox), "", Outcome.OK


async def _imap_connect(
    login: LoginConfig, credentials: _Credentials, tls: ssl.SSLContext, seconds: float
) -> Upstream:
    user = login.username or ""
    if credentials.tokens is None:
        return await connect(
            login.upstream_imap, tls, user, credentials.password or "", seconds=seconds
        )
    return await connect_oauth2(
        login.upstream_imap, tls, credentials.tokens, credentials.mailbox, seconds=seconds,
        username=user,
    )  # fmt: skip


async def _check_imap(
    config: Config,
    login: LoginConfig,
    credentials: _Credentials,
    tls: ssl.SSLContext,
    seconds: float,
    result: LoginCheck,
) -> None:
    where = login.upstream_imap
    try:
        up = await _imap_connect(login, credentials, tls, seconds)
    except LoginRefused as err:
        result.imap = ServerCheck(where, Outcome.REFUSED, str(err))
        return
    except (UpstreamImapError, OAuthError) as err:
        result.imap = ServerCheck(where, Outcome.UNREACHABLE, str(err))
        return
    try:
        result.imap = ServerCheck(where, Outcome.OK, f"logged in as {result.username}")
        result.capabilities = [
            Capability(name, up.has(name), without) for name, without in CAPABILITIES.items()
        ]
        result.mailboxes = await _mailboxes(config, up)
    except UpstreamImapError as err:
        result.imap = ServerCheck(where, Outcome.UNREACHABLE, f"after the login: {err}")
    finally:
        with contextlib.suppress(UpstreamImapError):
            await up.logout()


async def _mailboxes(config: Config, up: Upstream) -> list[MailboxCheck]:
    """Each hold mailbox, and the accounts root when accounts are configured: there or made."""
    wanted: list[tuple[str, str]] = []
    if config.triage.enabled:
        for batch in config.batches:
            what = f"hold mailbox of batch {batch.name!r}"
            wanted.append((what, await up.server_name(batch.mailbox)))
    if config.accounts.accounts:
        wanted.append(("account folders' root", await accounts_root(up, config.accounts.root)))
    checks: list[MailboxCheck] = []
    for what, name in wanted:
        if await up.list_mailboxes(name):
            checks.append(MailboxCheck(what, name, MailboxState.EXISTS))
            continue
        try:
            await up.ensure_mailbox(name)  # CREATE only; what exists is never touched
        except UpstreamImapError as err:
            checks.append(MailboxCheck(what, name, MailboxState.REFUSED, str(err)))
        else:
            checks.append(MailboxCheck(what, name, MailboxState.CREATED))
    return checks


async def _check_smtp(
    login: LoginConfig,
    where: Endpoint,
    credentials: _Credentials,
    tls: ssl.SSLContext,
    seconds: float,
) -> ServerCheck:
    user = login.username or ""
    link = smtp_client(where, tls, seconds)
    try:
        await link.connect()
    except (aiosmtplib.SMTPException, OSError) as err:
        return ServerCheck(where, Outcome.UNREACHABLE, f"cannot connect to {where}: {err}")
    try:
        if not link.server_auth_methods:  # connect() sends EHLO only when it did STARTTLS
            await link.ehlo()
        if credentials.tokens is not None and login.oauth is not None:
            await authenticate_with_token(link, credentials.tokens, user, login.oauth, where)
        elif "plain" in link.server_auth_methods or "login" not in link.server_auth_methods:
            # One mechanism only: aiosmtplib's login() would try each, counting one wrong
            # password twice against the server's lockout.
            await link.auth_plain(user, credentials.password or "")
        else:
            await link.auth_login(user, credentials.password or "")
    except aiosmtplib.SMTPResponseException as err:
        message = " ".join(err.message.splitlines())
        return ServerCheck(
            where, Outcome.REFUSED, f"{where} refused the login: {err.code} {message}"
        )
    except OAuthError as err:
        return ServerCheck(where, Outcome.REFUSED, str(err))
    except (aiosmtplib.SMTPException, OSError) as err:
        return ServerCheck(where, Outcome.UNREACHABLE, f"{where}: {err}")
    finally:
        try:
            await link.quit()
        except (aiosmtplib.SMTPException, OSError):
            link.close()
    return ServerCheck(where, Outcome.OK, f"AUTH accepted for {user}")


_MARK = {
    Outcome.OK: "ok",
    Outcome.REFUSED: "FAILED",
    Outcome.UNREACHABLE: "FAILED",
    Outcome.NO_CREDENTIALS: "FAILED",
}


def report(check: LoginCheck) -> list[str]:
    """The lines ``commsproxy check`` prints for one login."""
    lines = [f"{check.username or '[[login]] without username'}:"]
    for side, server in (("IMAP", check.imap), ("SMTP", check.smtp)):
        where = f" {server.endpoint}" if server.endpoint is not None else ""
        mark = _MARK.get(server.outcome, "skipped")
        if server.outcome is Outcome.UNREACHABLE:
            mark = "FAILED (unreachable)"
        lines.append(f"  {side}{where}: {mark}" + (f": {server.detail}" if server.detail else ""))
    if check.capabilities:
        present = [cap.name for cap in check.capabilities if cap.present]
        lines.append(f"  server offers: {' '.join(present) or 'none of what commsproxy uses'}")
        for cap in check.missing:
            lines.append(f"  no {cap.name}: {cap.without}")
    for box in check.mailboxes:
        detail = f": {box.detail}" if box.detail else ""
        lines.append(f"  {box.what} {box.name}: {box.state.value}{detail}")
    for model in check.models:
        lines.append(f"  {model.what}: {'ok' if model.ok else 'FAILED'}: {model.detail}")
    return lines
