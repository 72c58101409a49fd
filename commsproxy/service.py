"""Running the proxy: settings from the config and the command line, listeners, clean shutdown.

``plan`` merges the config file with the options of ``commsproxy run`` (the command line wins)
and checks them; ``serve`` starts the IMAP and SMTP listeners and runs until SIGTERM/SIGINT or
``stop``, then stops accepting, says BYE to every IMAP client and lets SMTP transactions finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from . import signals
from .config import Config, ConfigError, LoginConfig
from .endpoints import (
    Endpoint,
    EndpointError,
    ListenAddress,
    client_tls_context,
    parse_endpoint,
    parse_listen,
    server_tls_context,
)
from .oauth import OAuthProvider, SignIns
from .proxy.imap.gate import GateHooks
from .proxy.imap.hooks import RelayLimits
from .proxy.imap.listener import ImapListener, ImapListenerSettings
from .proxy.imap.oauth_login import OAuthUpstreamLogin
from .proxy.oauth_logins import OAuthLogins
from .proxy.routing import LoginRoutes, UpstreamServer
from .proxy.smtp.handler import SentMessage
from .proxy.smtp.listener import SmtpListener, SmtpListenerSettings
from .reload import Changes, ConfigWatch
from .triage.account_match import AccountGuesser
from .triage.decide import ModelDecider
from .triage.hub import LoginRoute, TriageHub

if TYPE_CHECKING:
    from .triage.decide import UrgentTag
    from .triage.history_keeper import HistoryKeeper
    from .triage.state_store import StateStore
    from .web.server import WebServer

__all__ = ["Plan", "RunOptions", "Running", "TriagePlan", "TriageStartError", "plan", "serve"]

log = logging.getLogger("commsproxy")


@dataclass(frozen=True)
class RunOptions:
    """What ``commsproxy run`` may set on the command line; None means "from the config"."""

    upstream: str | None = None
    smtp_upstream: str | None = None
    listen: str | None = None
    smtp_listen: str | None = None
    tls_listen: str | None = None
    cafile: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allow_insecure: bool = False
    no_triage: bool = False
    dry_run: bool = False
    state_dir: Path | None = None


@dataclass(frozen=True)
class TriagePlan:
    """Triage settings, checked; engines are built at start (they need the event loop)."""

    config: Config
    state_dir: Path
    routes: tuple[tuple[LoginRoute, UpstreamServer], ...]
    dry_run: bool
    #: Each login's SMTP server by its key (auto-replies are sent there, as the login).
    smtp: Mapping[str, Endpoint] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """Everything needed to start, checked."""

    imap: ImapListenerSettings
    smtp: SmtpListenerSettings | None
    triage: TriagePlan | None = None
    #: user name -> provider, for each login with ``auth = "oauth2"``
    oauth: Mapping[str, OAuthProvider] = field(default_factory=dict)
    config: Config | None = None  # as loaded, for reloading it while running


@dataclass
class Running:
    """What is listening, for whoever started the service (tests, the CLI's banner)."""

    imap: ImapListener
    smtp: SmtpListener | None
    oauth: OAuthLogins | None = None
    web: WebServer | None = None  # the local page, when it listens


def _flag(flag: str, message: str) -> ConfigError:
    return ConfigError(None, flag, message)


def _endpoint(url: str, protocol: str, flag: str, insecure: bool) -> Endpoint:
    try:
        return parse_endpoint(url, protocol, allow_insecure=insecure)
    except EndpointError as err:
        raise _flag(flag, str(err)) from None


def _listen(value: str | None, flag: str, default: ListenAddress) -> ListenAddress:
    if value is None:
        return default
    try:
        return parse_listen(value)
    except EndpointError as err:
        raise _flag(flag, str(err)) from None


def _tls_for(cafile: Path | None, from_flag: bool, config: Config) -> ssl.SSLContext:
    try:
        return client_tls_context(cafile)
    except (OSError, ssl.SSLError) as err:
        where = "--cafile" if from_flag else "[[login]] cafile"
        raise ConfigError(
            None if from_flag else config.path, where, f"cannot load {cafile}: {err}"
        ) from None


@dataclass(frozen=True)
class _LoginServers:
    username: str | None
    password_command: str | None
    imap: UpstreamServer
    smtp: UpstreamServer | None
    oauth: OAuthProvider | None = None


def _servers(config: Config, options: RunOptions) -> list[_LoginServers]:
    """Each login's IMAP and SMTP server, the command line's overrides applied."""
    entries: list[LoginConfig | None] = list(config.logins) or [None]
    servers = []
    contexts: dict[Path | None, ssl.SSLContext] = {}  # one per CA file: loading one takes time
    for login in entries:
        insecure = options.allow_insecure or bool(login and login.allow_insecure)
        cafile = options.cafile or (login.cafile if login else None)
        if cafile not in contexts:
            contexts[cafile] = _tls_for(cafile, options.cafile is not None, config)
        tls = contexts[cafile]
        if options.upstream is not None:
            imap = _endpoint(options.upstream, "imap", "--upstream", insecure)
        elif login is not None:
            imap = login.upstream_imap
        else:
            raise _flag(
                "--upstream",
                "no upstream IMAP server: pass --upstream URL "
                "(e.g. imaps://imap.example.com) or configure [[login]] upstream_imap",
            )
        smtp = login.upstream_smtp if login else None
        if options.smtp_upstream is not None:
            smtp = _endpoint(options.smtp_upstream, "smtp", "--smtp-upstream", insecure)
        servers.append(
            _LoginServers(
                login.username if login else None,
                login.password_command if login else None,
                UpstreamServer(imap, tls),
                UpstreamServer(smtp, tls) if smtp else None,
                login.oauth if login else None,
            )
        )
    return servers


def plan(config: Config, options: RunOptions) -> Plan:
    """Merge the config with the command line; raises ConfigError naming the key or flag."""
    servers = _servers(config, options)
    first_imap = servers[0].imap
    first_smtp = next((entry.smtp for entry in servers if entry.smtp is not None), None)
    imap_routes = smtp_routes = None
    if len(servers) > 1:  # config.py made sure each has its own username
        imap_routes = LoginRoutes.of({str(e.username): e.imap for e in servers})
        smtp_routes = LoginRoutes.of({str(e.username): e.smtp for e in servers if e.smtp})
    upstream_tls = first_imap.tls

    proxy = config.proxy
    cert = options.tls_cert or proxy.tls_cert
    key = options.tls_key or proxy.tls_key
    local_tls = None
    if cert is not None:
        try:
            local_tls = server_tls_context(cert, key)
        except (OSError, ssl.SSLError) as err:
            where = "--tls-cert" if options.tls_cert else "[proxy] tls_cert"
            raise ConfigError(
                None if options.tls_cert else config.path,
                where,
                f"cannot load {cert} / {key}: {err}",
            ) from None
    elif key is not None:
        raise _flag("--tls-key", "needs --tls-cert as well")

    imap = ImapListenerSettings(
        upstream=first_imap.endpoint,
        upstream_tls=upstream_tls,
        listen=_listen(options.listen, "--listen", proxy.imap),
        tls_listen=_listen(options.tls_listen, "--tls-listen", proxy.imaps) if local_tls else None,
        local_tls=local_tls,
        limits=RelayLimits(max_literal=proxy.max_literal),
        max_connections=proxy.max_connections,
        routes=imap_routes,
    )
    smtp = None
    if first_smtp is not None:
        smtp = SmtpListenerSettings(
            upstream=first_smtp.endpoint,
            upstream_tls=first_smtp.tls,
            listen=_listen(options.smtp_listen, "--smtp-listen", proxy.smtp),
            local_tls=local_tls,
            size_limit=proxy.max_message_size,
            max_in_flight=proxy.smtp_max_in_flight,
            routes=smtp_routes,
        )
    triage = None
    if config.triage.enabled and not options.no_triage:
        routes = tuple(
            (
                LoginRoute(
                    e.username or "default", e.username, e.password_command, e.oauth is not None
                ),
                e.imap,
            )
            for e in servers
        )
        triage = TriagePlan(
            config=config,
            state_dir=options.state_dir or proxy.state_dir,
            routes=routes,
            dry_run=options.dry_run,
            smtp={e.username or "default": e.smtp.endpoint for e in servers if e.smtp},
        )
    oauth = {str(e.username): e.oauth for e in servers if e.oauth is not None}
    return Plan(imap, smtp, triage, oauth, config)


async def serve(
    the_plan: Plan,
    *,
    stop: asyncio.Event | None = None,
    started: Callable[[Running], None] | None = None,
    grace: float = 5.0,
    reload_interval: float = 2.0,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then shut down cleanly.

    The config file is reloaded when it changes (looked at every ``reload_interval`` seconds)
    and on SIGHUP where there is one (``reload.py``).
    """
    # Triage's run lock and state store stay entered on ``held`` for the whole run, so every
    # way out (a clean stop, a listener that cannot bind, a failed start) gives them up.
    with contextlib.ExitStack() as held:
        oauth = await _oauth_logins(the_plan)
        hub = _start_triage(the_plan.triage, held, oauth) if the_plan.triage else None
        the_stop = stop or asyncio.Event()
        watch = _config_watch(the_plan, hub, reload_interval)
        await _serve(the_plan, hub, the_stop, started, grace, oauth, watch)


async def _oauth_logins(the_plan: Plan) -> OAuthLogins | None:
    """The process's one SignIns, when any login signs in with OAuth2.

    One for all: every IMAP and SMTP session of a login and its triage engine then share one
    access token and one refresh. Finding the keyring may talk to D-Bus, hence the thread.
    """
    if not the_plan.oauth:
        return None
    signins = await asyncio.to_thread(SignIns)
    log.info(
        "OAuth2 sign-in for %s; tokens kept in %s", ", ".join(the_plan.oauth), signins.store.kind
    )
    return OAuthLogins.of(signins, the_plan.oauth)


async def _serve(
    the_plan: Plan,
    hub: TriageHub | None,
    stop: asyncio.Event,
    started: Callable[[Running], None] | None,
    grace: float,
    oauth: OAuthLogins | None = None,
    watch: ConfigWatch | None = None,
) -> None:
    """The listeners and triage's engines, from start to a clean shutdown."""
    loop = asyncio.get_running_loop()
    # No add_signal_handler on Windows: signals.py falls back to a thread-safe plain handler.
    handlers = dict.fromkeys(signals.stop_signals(), stop.set)
    if watch is not None and hasattr(signal, "SIGHUP"):
        handlers[signal.SIGHUP] = watch.poke
    restore_signals = signals.install(loop, handlers)
    hooks = (
        GateHooks(hub, the_plan.triage.config.triage.gate_timeout)
        if hub and the_plan.triage
        else None
    )
    # OAuth2 logins: the proxy checks the local password and logs in upstream with a token.
    upstream_login = OAuthUpstreamLogin(oauth) if oauth is not None else None
    imap = ImapListener(the_plan.imap, hooks=hooks, logins=hub, upstream_login=upstream_login)
    on_sent = None
    if hub is not None:
        the_hub = hub

        async def on_sent(sent: SentMessage) -> None:
            await the_hub.file_sent(sent.user, sent.rcpt_tos, sent.content, sent.followup)

    smtp = SmtpListener(the_plan.smtp, on_sent=on_sent, oauth=oauth) if the_plan.smtp else None
    if smtp is not None and hub is not None:
        from .triage.collision import CollisionCheck

        # A reply to a thread a colleague answered meanwhile: kept back or noticed.
        smtp.handler.outgoing_check = CollisionCheck(hub)
    triage_task = asyncio.create_task(hub.run(stop)) if hub is not None else None
    page: WebServer | None = None
    watch_task = asyncio.create_task(watch.run(stop)) if watch is not None else None
    try:
        await imap.start()
        if smtp is not None:
            await smtp.start()
        else:
            log.info("SMTP relay off: no SMTP upstream configured (--smtp-upstream)")
        page = await _start_page(the_plan, hub, watch)
        if started is not None:
            started(Running(imap, smtp, oauth, page))
        log.info("commsproxy ready")
        # What the start made (modules, the model, the config) lives as long as the process:
        # kept out of the collector's full passes, which would walk it again and again while
        # a backlog of mail is decided. Garbage goes first, or it would stay for good.
        gc.collect()
        gc.freeze()
        await stop.wait()
        log.info("commsproxy shutting down")
    finally:
        restore_signals()
        if watch_task is not None:
            watch_task.cancel()
            await asyncio.gather(watch_task, return_exceptions=True)
        if page is not None:
            await page.stop()
        await imap.stop(grace)
        if smtp is not None:
            await smtp.stop(grace)
        if triage_task is not None:
            stop.set()
            await triage_task
        log.info("commsproxy stopped")


async def _start_page(
    the_plan: Plan, hub: TriageHub | None, watch: ConfigWatch | None
) -> WebServer | None:
    """The local page on 127.0.0.1 (``[web]``), reading triage's store; None when off.

    A port that cannot be had stops the page, not the proxy: mail keeps flowing, and the
    error names the port and the key that changes it.
    """
    triage = the_plan.triage
    if triage is None or hub is None:
        log.info("local page off: it shows triage, which is off")
        return None
    if not triage.config.web.enabled:
        log.info("local page off ([web] enabled = false)")
        return None
    from .triage.user_actions import UserActions
    from .web.access import load_or_create_secret
    from .web.app import PageContext
    from .web.server import WebServer, WebStartError

    config = triage.config

    def current() -> Config:
        return watch.current if watch is not None else config

    def actions() -> UserActions:
        # The config in force now; a rule saved is put in force at once (the watch's poke).
        poke = watch.poke if watch is not None else None
        return UserActions(current(), state_dir=triage.state_dir, config_saved=poke)

    from .triage.state_store import StateStore, StoreError

    try:
        secret = await asyncio.to_thread(load_or_create_secret, triage.state_dir)
        store = await asyncio.to_thread(StateStore.open, triage.state_dir)  # its own connection
    except (OSError, StoreError) as err:
        log.error("the local page cannot start: %s", err)
        return None
    context = PageContext(current, store, triage.state_dir, secret, config.web.port, actions)
    page = WebServer(context, owns_store=True)
    try:
        await page.start()
    except WebStartError as err:
        log.error("%s", err)
        return None
    return page


def _config_watch(the_plan: Plan, hub: TriageHub | None, interval: float) -> ConfigWatch | None:
    """A watch on the config file that puts reloaded VIPs, batches and accounts in force."""
    if the_plan.config is None or the_plan.config.path is None:
        return None  # built-in defaults: no file to watch

    async def apply(new: Config, changed: Changes) -> None:
        if hub is None or the_plan.triage is None:
            return
        from .triage.account_match import AccountRules
        from .triage.decide import RuleDecider
        from .triage.filer import FilingSetup

        for route, _ in the_plan.triage.routes:
            engine = hub.engines[route.key]
            settings = engine.settings
            if changed.engines:
                filing = settings.filing
                if "[accounts]" in changed.engines:
                    own = _own_addresses(route.username, new.accounts.internal_domains)
                    guesser = filing.guesser if filing is not None else None
                    if new.accounts.accounts or guesser is not None:
                        filing = FilingSetup(AccountRules(new.accounts, own), guesser)
                    else:
                        filing = None
                    settings = replace(settings, own_addresses=own)
                settings = replace(
                    settings,
                    triage=new.triage,
                    batches=new.batches,
                    filing=filing,
                    followup=new.followup,
                    snooze=new.snooze,
                    autoreply=new.autoreply,
                    accounts=new.accounts,
                )
            decider = engine.decider
            if (changed.vip or changed.never_urgent or changed.engines) and isinstance(
                decider, RuleDecider
            ):
                decider = RuleDecider(
                    new.triage.vip,
                    decider.fallback,
                    new.triage.never_urgent,
                    _urgent_tag(new, route.username),
                )
            follow = getattr(settings.digest_link, "follow", None)
            if changed.vip and callable(follow):
                follow(new.triage.vip)  # the digest offers no link for a sender in vip now
            await hub.reconfigure(route.key, decider, settings)

    return ConfigWatch(the_plan.config, apply, interval=interval)


def _start_triage(
    triage: TriagePlan, held: contextlib.ExitStack, oauth: OAuthLogins | None = None
) -> TriageHub:
    """The store, the model and one engine per login; raises TriageStartError saying why not.

    The run lock (``status`` and ``release`` look for it) and the store are entered on
    ``held``, which gives them up, store first, when the caller's ``with`` ends.
    """
    from .triage.account_match import AccountRules
    from .triage.autoreply import give_credentials
    from .triage.decide import RuleDecider
    from .triage.engine import Credentials, Engine, EngineSettings
    from .triage.filer import FilingSetup
    from .triage.parts import engine_parts
    from .triage.runlock import RunLock, RunLockError
    from .triage.signin import TokenCredentials
    from .triage.state_store import StateStore, StoreError

    try:
        held.enter_context(RunLock(triage.state_dir))
        store = held.enter_context(StateStore.open(triage.state_dir))
    except (RunLockError, StoreError, OSError) as err:
        raise TriageStartError(str(err)) from None
    config = triage.config
    decider_for = _load_model(config, triage)
    guesser = _load_accounts_model(config)
    hub = TriageHub(store)
    digest_link = _digest_link(config, triage.state_dir)
    for route, server in triage.routes:
        own = _own_addresses(route.username, config.accounts.internal_domains)
        filing = None
        if config.accounts.accounts or guesser is not None:
            filing = FilingSetup(AccountRules(config.accounts, own), guesser)
        settings = EngineSettings(
            login=route.key,
            endpoint=server.endpoint,
            tls=server.tls,
            triage=config.triage,
            batches=config.batches,
            dry_run=triage.dry_run,
            filing=filing,
            own_addresses=own,
            digest_link=digest_link,
            followup=config.followup,
            snooze=config.snooze,
            autoreply=config.autoreply,
            accounts=config.accounts,
            smtp=triage.smtp.get(route.key),
        )
        model = decider_for(route.username)
        history = _live_history(config, route, model, store)
        tag = _urgent_tag(config, route.username)
        decider = RuleDecider(config.triage.vip, model, config.triage.never_urgent, tag)
        credentials: Credentials = hub.credentials_for(route.key)
        provider = oauth.provider_for(route.username or "") if oauth is not None else None
        if oauth is not None and provider is not None and route.username is not None:
            # The sessions' own AccessTokens: one refresh for the mail program and triage.
            credentials = TokenCredentials(
                oauth.signins.tokens(route.username, provider),
                oauth.signins.identity(route.username, provider).mailbox,
                store,
                route.key,
                settings.clock,
            )
        spare = functools.partial(hub.spare_password, route.key)  # to leave a notice with
        parts = engine_parts(settings, store)
        give_credentials(parts, credentials)  # auto-replies log in to SMTP as the login
        hub.add(route, Engine(settings, decider, store, credentials, history, spare, parts))
    mode = " (dry run: tagging only, nothing held)" if triage.dry_run else ""
    log.info("triage on for %s%s", ", ".join(r.key for r, _ in triage.routes), mode)
    return hub


def _digest_link(config: Config, state_dir: Path) -> Callable[[str], str | None] | None:
    """Sender -> the local page's signed "always urgent" link, for the digest; None when the
    page is off (or its key cannot be kept: the digest then says to flag the message)."""
    if not config.web.enabled:
        return None
    from .web.access import load_or_create_secret
    from .web.links import DigestLinks

    try:
        secret = load_or_create_secret(state_dir)
    except OSError as err:
        log.warning("no links in digests: the page's key cannot be kept in %s (%s)", state_dir, err)
        return None
    return DigestLinks(secret, config.web.port, config.triage.vip)


def _load_model(config: Config, triage: TriagePlan) -> Callable[[str | None], ModelDecider]:
    """The urgency model from the config (or the default); its checks failing stops the start.

    Returns the decider for a login: the model with the contacts training saved beside it
    when they were read from that login (or from files), else the model alone.
    """
    from .classifier.contacts import Contacts, ContactsError, contacts_path
    from .classifier.live_model import resolve_live
    from .classifier.predict import Classifier, LoadedModel
    from .models.store import ModelError

    try:
        # Its scoring form when it has one: scored with numpy, scikit-learn never imported.
        pipeline, info = resolve_live(config.triage.model, "urgency")
    except ModelError as err:
        raise TriageStartError(f"[triage] model: {err}") from None
    log.info("triage model: %s", info.path)
    users = frozenset(
        r.username.lower() for r, _ in triage.routes if r.username and "@" in r.username
    )
    classifier = Classifier(LoadedModel.from_info(pipeline, info))
    contacts: Contacts | None = None
    path = contacts_path(info.path)
    if path.exists():
        try:
            contacts = Contacts.load(path)
        except ContactsError as err:
            # The model still works without them; every sender then looks new.
            log.warning("%s; triage goes on without your history with senders", err)
        else:
            log.info("contacts: %d senders (%s)", len(contacts.senders), path)

    def decider_for(username: str | None) -> ModelDecider:
        mine = contacts is not None and contacts.login in (None, username)
        return ModelDecider(classifier, users, contacts if mine else None)

    return decider_for


def _live_history(
    config: Config,
    route: LoginRoute,
    model: ModelDecider,
    store: StateStore,
) -> HistoryKeeper | None:
    """The login's history with senders read from its server and kept current, or None.

    The contacts training saved for this login (``model.history``) serve until the live
    history is known, then the live one alone: it is read from the same server, is newer and
    keeps up with the mail, while the saved totals cannot be updated (medians do not merge).
    """
    from .triage.history import LiveHistory
    from .triage.history_keeper import HistoryKeeper

    if config.triage.history_seconds <= 0:
        return None
    address = route.username if route.username and "@" in route.username else None
    # The user's addresses: the login's name when it is one, then the From of their sent mail.
    own = [address] if address else []
    live = LiveHistory(own, accounts=config.accounts, fallback=model.history)
    model.history = live
    return HistoryKeeper(live, store, route.key, config.triage, address=address)


def _urgent_tag(config: Config, username: str | None) -> UrgentTag:
    """``me+urgent@``: the login's own addresses with ``[triage] urgent_tag``; for a user name
    that is not an address, any local part at the team's domains."""
    from .triage.decide import UrgentTag

    domains = config.accounts.internal_domains
    own = _own_addresses(username, domains)
    return UrgentTag.of(config.triage.urgent_tag, own, () if "@" in (username or "@") else domains)


def _own_addresses(username: str | None, domains: Sequence[str]) -> tuple[str, ...]:
    """The login's addresses: its user name, or that name at each of the team's domains."""
    if not username:
        return ()
    name = username.lower()
    return (name,) if "@" in name else tuple(f"{name}@{domain}" for domain in domains)


def _load_accounts_model(config: Config) -> AccountGuesser | None:
    """The accounts model: configured, else the one `commsproxy train` wrote, else none."""
    from .classifier.live_model import load_live
    from .classifier.predict import Classifier, LoadedModel
    from .models.store import ModelError, legacy_path, user_model_path
    from .triage.account_match import ModelGuesser

    spec = config.accounts.model
    if spec == "none":
        return None
    path = Path(spec) if spec is not None else user_model_path("accounts")
    # An accounts model from an older commsproxy is refused with the command that converts it.
    if spec is None and not path.exists() and not legacy_path(path).exists():
        return None
    try:
        pipeline, info = load_live(path, "accounts")
    except ModelError as err:
        raise TriageStartError(f"[accounts] model: {err}") from None
    log.info("accounts model: %s", path)
    return ModelGuesser(Classifier(accounts=LoadedModel.from_info(pipeline, info)))


class TriageStartError(RuntimeError):
    """Triage cannot start (state store, model); the message says which and why."""
