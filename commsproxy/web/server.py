"""The local page as part of ``commsproxy run``: started beside the listeners on the same event
loop, on 127.0.0.1 only, and stopped with them."""

from __future__ import annotations

import errno
import logging

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from .app import PageContext, make_app

__all__ = ["WebServer", "WebStartError"]

log = logging.getLogger("commsproxy.web")


class _MalformedRequests(logging.Filter):
    """aiohttp logs a request it cannot even parse (no Host, a bad request line, a broken
    chunk) as "Error handling request" with a traceback; it answered 400 already and nothing
    of ours ran, so that is one plain line, not an error. Our own failures keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError):
            record.msg = "refused a malformed HTTP request: %s"
            record.args = (str(error.message).strip() or type(error).__name__,)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


#: The logger aiohttp's request handler reports to (instead of ``aiohttp.server``).
http_log = logging.getLogger("commsproxy.web.http")
http_log.addFilter(_MalformedRequests())

HOST = "127.0.0.1"  # never another address: the page shows private mail


class WebStartError(RuntimeError):
    """The page cannot listen; the message names the port and the ``[web] port`` key."""


class WebServer:
    """The page's HTTP server; ``owns_store``: close the context's store at ``stop``.

    ``run`` gives the page a state store connection of its own, so a page being read never
    holds the lock of the connection the engines write through on the event loop.
    """

    def __init__(self, context: PageContext, *, owns_store: bool = False) -> None:
        self.context = context
        self.owns_store = owns_store
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.context.port}/"

    async def start(self) -> None:
        runner = web.AppRunner(
            make_app(self.context),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
            logger=http_log,
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, self.context.port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            await runner.cleanup()
            self._close_store()
            why = "it is in use" if err.errno == errno.EADDRINUSE else str(err.strerror or err)
            raise WebStartError(
                f"the local page cannot listen on {HOST}:{self.context.port} ({why}); "
                "choose another port with [web] port in the config, or turn the page off "
                "with [web] enabled = false"
            ) from None
        self._runner = runner
        log.info("local page on %s (open it with `commsproxy open`)", self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            self._close_store()

    def _close_store(self) -> None:
        if self.owns_store:
            self.context.store.close()
