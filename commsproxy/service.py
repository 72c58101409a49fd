"""Running the proxy: settings from the config and the command line, listeners, clean shutdown.

``plan`` merges the config file with the options of ``commsproxy run`` (the command line wins)
and checks them; ``serve`` starts the IMAP and SMTP listeners and runs until SIGTERM/SIGINT or
``stop``, then stops accepting, says BYE to every IMAP client and lets SMTP transactions finish.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config, ConfigError
from .endpoints import (
    Endpoint,
    EndpointError,
    ListenAddress,
    client_tls_context,
    parse_endpoint,
    parse_listen,
    server_tls_context,
)
from .proxy.imap.listener import ImapListener, ImapListenerSettings
from .proxy.imap.relay import RelayLimits
from .proxy.smtp.listener import SmtpListener, SmtpListenerSettings

__all__ = ["Plan", "RunOptions", "Running", "plan", "serve"]

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


@dataclass(frozen=True)
class Plan:
    """Everything needed to start, checked."""

    imap: ImapListenerSettings
    smtp: SmtpListenerSettings | None


@dataclass
class Running:
    """What is listening, for whoever started the service (tests, the CLI's banner)."""

    imap: ImapListener
    smtp: SmtpListener | None


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


def plan(config: Config, options: RunOptions) -> Plan:
    """Merge the config with the command line; raises ConfigError naming the key or flag."""
    login = config.logins[0] if config.logins else None
    if len({str(entry.upstream_imap) for entry in config.logins}) > 1:
        raise ConfigError(
            config.path,
            "[[login]] upstream_imap",
            "several upstream servers are configured; "
            "this version relays every client to one upstream server",
        )
    insecure = options.allow_insecure or bool(login and login.allow_insecure)
    if options.upstream is not None:
        imap_upstream = _endpoint(options.upstream, "imap", "--upstream", insecure)
    elif login is not None:
        imap_upstream = login.upstream_imap
    else:
        raise _flag(
            "--upstream",
            "no upstream IMAP server: pass --upstream URL "
            "(e.g. imaps://imap.example.com) or configure [[login]] upstream_imap",
        )
    smtp_upstream = login.upstream_smtp if login else None
    if options.smtp_upstream is not None:
        smtp_upstream = _endpoint(options.smtp_upstream, "smtp", "--smtp-upstream", insecure)

    cafile = options.cafile or (login.cafile if login else None)
    try:
        upstream_tls = client_tls_context(cafile)
    except (OSError, ssl.SSLError) as err:
        where = "--cafile" if options.cafile else "[[login]] cafile"
        raise ConfigError(
            None if options.cafile else config.path, where, f"cannot load {cafile}: {err}"
        ) from None

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
        upstream=imap_upstream,
        upstream_tls=upstream_tls,
        listen=_listen(options.listen, "--listen", proxy.imap),
        tls_listen=_listen(options.tls_listen, "--tls-listen", proxy.imaps) if local_tls else None,
        local_tls=local_tls,
        limits=RelayLimits(max_literal=proxy.max_literal),
        max_connections=proxy.max_connections,
    )
    smtp = None
    if smtp_upstream is not None:
        smtp = SmtpListenerSettings(
            upstream=smtp_upstream,
            upstream_tls=upstream_tls,
            listen=_listen(options.smtp_listen, "--smtp-listen", proxy.smtp),
            local_tls=local_tls,
            size_limit=proxy.max_message_size,
        )
    return Plan(imap, smtp)


async def serve(
    the_plan: Plan,
    *,
    stop: asyncio.Event | None = None,
    started: Callable[[Running], None] | None = None,
    grace: float = 5.0,
) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then shut down cleanly."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    imap = ImapListener(the_plan.imap)
    smtp = SmtpListener(the_plan.smtp) if the_plan.smtp else None
    try:
        await imap.start()
        if smtp is not None:
            await smtp.start()
        else:
            log.info("SMTP relay off: no SMTP upstream configured (--smtp-upstream)")
        if started is not None:
            started(Running(imap, smtp))
        log.info("commsproxy ready")
        await stop.wait()
        log.info("commsproxy shutting down")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await imap.stop(grace)
        if smtp is not None:
            await smtp.stop(grace)
        log.info("commsproxy stopped")
