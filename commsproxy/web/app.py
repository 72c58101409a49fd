"""The local page's routes: thin handlers that check access, ask a facts module, render.

Every GET only reads. Every action is a POST that passes the CSRF check, reads its own form
fields and nothing else, calls the one function the CLI calls too (``Actions``), and answers
with a redirect back to the page, whose ``#flash`` says what happened. The store is SQLite,
so the facts are read in a worker thread, never on the event loop the proxy relays mail on.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from ..config import Config
from ..triage.holding import UntilError, parse_until
from ..triage.state_store import StateStore
from ..triage.user_actions import ActionError
from . import access
from .actions import Actions, Outcome
from .facts_accounts import accounts_facts
from .facts_day import day_facts
from .facts_model import model_facts
from .facts_today import today_facts
from .links import confirm_csrf, sender_sig
from .svg import hour_bars

__all__ = ["PAGES", "PageContext", "make_app"]

log = logging.getLogger("commsproxy.web")

STATIC = Path(__file__).resolve().parent / "static"
#: The pages, in the order of the navigation: path -> title.
PAGES = {"/today": "Today", "/day": "The day", "/accounts": "Accounts", "/model": "Model"}
_FLASHES = 20  # messages kept for the page they are shown on

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class PageContext:
    """What the page reads and acts through; ``config`` gives the config now in force."""

    config: Callable[[], Config]
    store: StateStore
    state_dir: Path
    secret: str
    port: int
    #: The user's actions, made for each use (they act on the config in force then).
    actions: Callable[[], Actions] | None = None
    clock: Callable[[], datetime] = _now
    flashes: OrderedDict[str, str] = field(default_factory=OrderedDict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def flash(self, message: str) -> str:
        key = str(next(self._ids))
        self.flashes[key] = message
        while len(self.flashes) > _FLASHES:
            self.flashes.popitem(last=False)
        return key


_CONTEXT = web.AppKey("context", PageContext)
_TEMPLATES = web.AppKey("templates", jinja2.Environment)


def make_app(context: PageContext) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=64 * 1024)
    app[_CONTEXT] = context
    app[_TEMPLATES] = _templates()
    app.on_response_prepare.append(_headers)
    app.router.add_get("/", _index)
    app.router.add_get("/today", _today)
    app.router.add_get("/day", _day)
    app.router.add_get("/accounts", _accounts)
    app.router.add_get("/model", _model)
    app.router.add_post("/actions/{name}", _action)
    app.router.add_get("/confirm/always-urgent", _confirm_page)
    app.router.add_post("/confirm/always-urgent", _confirm_post)
    app.router.add_static("/static/", STATIC, name="static")
    return app


# -- templates --------------------------------------------------------------------------------


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("commsproxy.web", "templates"),
        autoescape=True,  # every value is escaped; nothing is marked safe but our own SVG
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hm"] = lambda moment: moment.strftime("%H:%M") if moment else ""
    env.filters["when"] = _when
    env.filters["at_when"] = _at_when
    env.filters["iso"] = lambda moment: moment.isoformat() if moment else ""
    env.filters["until"] = _until
    env.globals["correction_words"] = _correction_words
    return env


_CORRECTIONS = {
    "rescue": "took it out of a batch: it was {label}",
    "demote": "moved it out of INBOX: it was {label}",
    "flag": "flagged it: it was {label}",
    "deliver": "had it delivered now: it was {label}",
}


def _correction_words(correction: Any) -> str:
    """A correction in words: what the user did, and what that says the message was."""
    text = _CORRECTIONS.get(correction.kind, correction.kind + ": it was {label}")
    return str(text).format(label=correction.label)


def _when(moment: datetime | None) -> str:
    """A local time, with the day when it is not today."""
    if moment is None:
        return ""
    local = moment.astimezone()
    if local.date() == datetime.now().astimezone().date():
        return local.strftime("%H:%M")
    return local.strftime("%a %d %b %H:%M")


def _at_when(moment: datetime | None) -> str:
    """ "at 17:51" today, "on Tue 08 Dec 08:00" another day: to follow a verb."""
    if moment is None:
        return ""
    text = _when(moment)
    return f"at {text}" if len(text) == 5 else f"on {text}"


def _until(moment: datetime | None, now: datetime) -> str:
    """How long until ``moment``, as the countdown shows it before its script runs."""
    if moment is None:
        return ""
    seconds = int((moment - now).total_seconds())
    if seconds <= 0:
        return "now"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"in {hours} h {minutes:02d} min" if hours else f"in {minutes} min"


def _render(
    request: web.Request,
    name: str,
    status: int = 200,
    *,
    pages: dict[str, str] = PAGES,
    **values: Any,
) -> web.Response:
    context = request.app[_CONTEXT]
    flash_key = request.query.get("flash")
    flash = context.flashes.get(flash_key, "") if flash_key else ""
    html = (
        request.app[_TEMPLATES]
        .get_template(name)
        .render(
            pages=pages,
            path=request.path,
            csrf=access.csrf_token(context.secret),
            flash=flash,
            **values,
        )
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


# -- access -----------------------------------------------------------------------------------


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in access.SECURITY_HEADERS.items():
        response.headers[name] = value


def _refusal(
    request: web.Request, why: str, status: int = 403, *, how_to_open: bool = True
) -> web.Response:
    """A short page saying why; ``how_to_open`` adds how to come in with the key."""
    html = (
        request.app[_TEMPLATES]
        .get_template("refused.html")
        .render(why=why, how_to_open=how_to_open)
    )
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


class _BadForm(Exception):
    """A POST body that is no readable form; the message says why, the status how to answer."""

    def __init__(self, why: str, status: int) -> None:
        super().__init__(why)
        self.status = status


async def _form(request: web.Request) -> Any:
    """The POST's form fields, or _BadForm: the body is read once here and never trusted.

    aiohttp raises on a body that is too big (413), on bytes that are not UTF-8, on a broken
    multipart body, and when the client leaves while it is read; each of those is a refusal,
    never a traceback in ``run``'s log.
    """
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge:
        raise _BadForm("Refused: the form is too big.", 413) from None
    except web.HTTPException as err:  # aiohttp's other refusals of a body
        status = err.status if 400 <= err.status < 500 else 400
        raise _BadForm("Refused: the form could not be read.", status) from None
    except (ValueError, UnicodeError, LookupError, AssertionError):
        raise _BadForm("Refused: the form could not be read.", 400) from None
    except (ConnectionError, asyncio.IncompleteReadError, EOFError):
        raise _BadForm("The request ended before its form was read.", 400) from None


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    context = request.app[_CONTEXT]
    if not access.host_allowed(request.headers.get("Host"), context.port):
        return _refusal(request, "This page answers only at 127.0.0.1 or localhost.")
    try:
        return await _guarded(request, handler, context)
    except _BadForm as err:
        return _refusal(request, str(err), err.status, how_to_open=False)


async def _guarded(
    request: web.Request, handler: Handler, context: PageContext
) -> web.StreamResponse:
    path = request.path
    if path.startswith("/static/") or path == "/" or path.startswith("/confirm/"):
        return await handler(request)  # the page itself checks the key or the link's signature
    cookie = request.cookies.get(access.cookie_name(context.port))
    if not access.same(cookie, access.cookie_value(context.secret)):
        return _refusal(request, _NO_KEY)
    if request.method == "POST":
        refused = await _csrf_refusal(request, access.csrf_token(context.secret))
        if refused is not None:
            return _refusal(request, refused, how_to_open=False)
    elif request.method not in ("GET", "HEAD"):
        return _refusal(request, "This page does not answer that kind of request.", 405,
                        how_to_open=False)  # fmt: skip
    return await handler(request)


async def _csrf_refusal(request: web.Request, token: str) -> str | None:
    """Why a POST is refused as a possible cross-site request, or None when it is fine."""
    context = request.app[_CONTEXT]
    if not access.origin_allowed(
        request.headers.get("Origin"), request.headers.get("Referer"), context.port
    ):
        return "Refused: this request did not come from the page itself."
    form = await _form(request)
    given = form.get("csrf")
    if not isinstance(given, str) or not access.same(given, token):
        return "Refused: the form's security token is missing or wrong. Reload the page."
    return None


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def _index(request: web.Request) -> web.StreamResponse:
    """``/?key=SECRET`` from ``commsproxy open``: the cookie, then the page without the key."""
    context = request.app[_CONTEXT]
    name, value = access.cookie_name(context.port), access.cookie_value(context.secret)
    key = request.query.get("key")
    if key is not None:
        if not access.same(key, context.secret):
            return _refusal(request, "This key is not right (it may be from another install).")
        response = _see_other("/today")
        response.set_cookie(name, value, httponly=True, samesite="Strict", path="/")
        return response
    if access.same(request.cookies.get(name), value):
        return _see_other("/today")
    return _refusal(request, _NO_KEY)


_NO_KEY = "This browser has no key for this page."


# -- pages ------------------------------------------------------------------------------------


async def _today(request: web.Request) -> web.StreamResponse:
    context = request.app[_CONTEXT]
    now = context.clock()
    facts = await asyncio.to_thread(
        today_facts, context.config(), context.store, context.state_dir, now
    )
    return _render(request, "today.html", facts=facts, now=facts.now)


async def _day(request: web.Request) -> web.StreamResponse:
    context = request.app[_CONTEXT]
    day = await asyncio.to_thread(day_facts, context.store, context.clock())
    chart = hour_bars(
        [
            ("delivered at once", "#1f5fbf", day.at_once),
            ("held", "#d18a00", day.held),
            ("released", "#1b7a3d", day.released),
        ],
        "Mail per hour today: delivered at once, held, released",
    )
    return _render(request, "day.html", day=day, chart=chart, now=day.now)


async def _accounts(request: web.Request) -> web.StreamResponse:
    context = request.app[_CONTEXT]
    accounts = await asyncio.to_thread(accounts_facts, context.config(), context.store)
    return _render(request, "accounts.html", accounts=accounts, now=context.clock().astimezone())


async def _model(request: web.Request) -> web.StreamResponse:
    context = request.app[_CONTEXT]
    now = context.clock()
    model = await asyncio.to_thread(model_facts, context.config(), context.store, now)
    kinds = {
        "rescue": "brought a held message to INBOX",
        "demote": "moved urgent mail to a batch",
        "flag": "flagged a message it had held or not marked urgent",
        "deliver": "asked for a held message now",
    }
    return _render(request, "model.html", model=model, kind_words=kinds, now=now.astimezone())


# -- actions ----------------------------------------------------------------------------------


def _field(form: Any, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _back(form: Any) -> str:
    back = _field(form, "back")
    return back if back in PAGES else "/today"


async def _run_action(actions: Actions, name: str, form: Any, now: datetime) -> Outcome | str:
    """Call the action ``name`` with the form's fields; a string says why it cannot be done."""
    login = _field(form, "login") or None
    if name == "deliver":
        message_id = _field(form, "message_id")
        if not message_id:
            return "deliver: which message? (no message_id)"
        return await actions.deliver(login, message_id)
    if name == "release":
        return await actions.release(login, _field(form, "batch") or None)
    if name in ("always-urgent", "never-urgent", "forget-sender"):
        pattern = _field(form, "pattern")
        if not pattern:
            return f"{name}: which sender? (no pattern)"
        if name == "always-urgent":
            return await actions.always_urgent(pattern)
        if name == "never-urgent":
            return await actions.never_urgent(pattern)
        return await actions.forget_sender(pattern)
    if name == "focus-off":
        try:
            until = parse_until(_field(form, "until"), now)
        except UntilError as err:
            return f"focus off: {err}"
        return await actions.focus_off(until)
    if name == "focus-on":
        return await actions.focus_on()
    return f"no such action: {name}"


async def _action(request: web.Request) -> web.StreamResponse:
    context = request.app[_CONTEXT]
    form = await _form(request)  # read once already by the CSRF check; cached
    name = request.match_info["name"]
    if context.actions is None:
        message = "Actions are not available in this commsproxy."
    else:
        try:
            done = await _run_action(context.actions(), name, form, context.clock())
        except ActionError as err:
            message = str(err)
        except Exception as err:  # shown and logged; the page stays up
            log.warning("page action %s failed: %s", name, err)
            message = f"{name} failed: {err}"
        else:
            message = done if isinstance(done, str) else done.message
    return _see_other(f"{_back(form)}?flash={context.flash(message)}")


# -- links from the digest --------------------------------------------------------------------


async def _confirm_page(request: web.Request) -> web.StreamResponse:
    """The digest's "always urgent" link: a confirmation, changing nothing by itself."""
    context = request.app[_CONTEXT]
    sender = request.query.get("sender", "")
    sig = request.query.get("sig", "")
    if not sender or not access.same(sig, sender_sig(context.secret, sender)):
        return _refusal(request, "This link is not valid (it was changed, or is for another "
                        "commsproxy).")  # fmt: skip
    return _render(
        request,
        "confirm.html",
        pages=PAGES if _has_key(request) else {},
        sender=sender,
        sig=sig,
        confirm_token=confirm_csrf(context.secret, sig),
        now=context.clock().astimezone(),
    )


async def _confirm_post(request: web.Request) -> web.StreamResponse:
    """The confirmation's button: accepted with the link's signature, without the cookie."""
    context = request.app[_CONTEXT]
    form = await _form(request)
    sender, sig = _field(form, "sender"), _field(form, "sig")
    if not sender or not access.same(sig, sender_sig(context.secret, sender)):
        return _refusal(request, "This link is not valid.")
    if not access.origin_allowed(
        request.headers.get("Origin"), request.headers.get("Referer"), context.port
    ) or not access.same(_field(form, "csrf") or None, confirm_csrf(context.secret, sig)):
        return _refusal(request, "Refused: this request did not come from the page itself.")
    if context.actions is None:
        message = "Actions are not available in this commsproxy."
    else:
        try:
            message = _short((await context.actions().always_urgent(sender)).message)
        except ActionError as err:
            message = str(err)
        except Exception as err:
            log.warning("always urgent for %s from a digest link failed: %s", sender, err)
            message = "always urgent failed; `commsproxy run` logged why"
    # A link from the digest is read without the cookie: the other pages would refuse such
    # a visitor, so they are linked only for one who has the key.
    has_key = _has_key(request)
    return _render(
        request,
        "confirmed.html",
        pages=PAGES if has_key else {},
        has_key=has_key,
        message=message,
        now=context.clock().astimezone(),
    )


def _has_key(request: web.Request) -> bool:
    context = request.app[_CONTEXT]
    cookie = request.cookies.get(access.cookie_name(context.port))
    return access.same(cookie, access.cookie_value(context.secret))


def _short(message: str) -> str:
    """A rule change's words without the config file's path ("...; /home/x/... saved"): the
    confirmation is for whoever opened the link, the path is for the terminal."""
    return message.split("; ", 1)[0]
