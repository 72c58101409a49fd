"""The local page in Debian's Chromium, against a real ``commsproxy run`` and the test Dovecot.

One Chromium serves the session (selenium with Debian's chromedriver, so Selenium Manager never
downloads anything); each module starts its own ``run`` for a fresh user of the private Dovecot
with the page on a free port (``page_env``), puts mail in (urgent, held in both batches, a
customer's mail in and out) and makes one correction the way a mail program does (a held
message moved back to INBOX over IMAP), so every page has real content. Screenshots go to
``test-artifacts/browser/`` at the repository root.
"""

from __future__ import annotations

import base64
import imaplib
import json
import shlex
import smtplib
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.mailfactory import render
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess
from tests.testbed.triage import quiet_batches, triage_proxy, wait_until, where

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"
HOLD = ("INBOX", "Later", "Later/Bulk")
REBOUND = "rebound.example"
TEAM_DOMAIN = "example.com"  # the user's own domain: mail between colleagues is internal


SAVED: list[Path] = []  # screenshots written in this session


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SAVED:
        terminalreporter.write_line(f"browser screenshots ({len(SAVED)}): {ARTIFACTS}/")


# --- the browser ----------------------------------------------------------------------------


class Browser:
    """The session's Chromium, with what each page load asked the network and logged."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver
        self.icon_errors: list[dict[str, Any]] = []  # console errors about /favicon.ico

    def get(self, url: str) -> None:
        self.logs()  # drop what earlier pages left
        self.driver.get(url)

    def logs(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(console entries, network events) since the last call; reading drains them."""
        console = list(self.driver.get_log("browser"))
        events = [
            json.loads(entry["message"])["message"] for entry in self.driver.get_log("performance")
        ]
        return console, events

    def check_clean(self, origin: str) -> list[str]:
        """Asserts no SEVERE console entry (a CSP violation is one) and no request that leaves
        ``origin``; returns the URLs requested since the last look."""
        console, events = self.logs()
        severe = [entry for entry in console if entry.get("level") == "SEVERE"]
        # The browser's own request for an icon is looked at by its own test
        # (test_pages.py::test_the_page_has_an_icon), so that it fails alone.
        self.icon_errors += [e for e in severe if "/favicon.ico" in e.get("message", "")]
        severe = [e for e in severe if "/favicon.ico" not in e.get("message", "")]
        assert not severe, f"console errors: {severe}"
        urls = [
            event["params"]["request"]["url"]
            for event in events
            if event.get("method") == "Network.requestWillBeSent"
        ]
        outside = [u for u in urls if not (u.startswith(origin + "/") or u.startswith("data:"))]
        assert not outside, f"requests outside {origin}: {outside}"
        # What the page itself fetched is there too (scripts and styles can fail silently).
        script_urls = self.driver.execute_script("return performance.getEntries().map(e => e.name)")
        outside = [
            u
            for u in script_urls
            if u.startswith(("http:", "https:", "ws:", "wss:")) and not u.startswith(origin + "/")
        ]
        assert not outside, f"performance entries outside {origin}: {outside}"
        return urls

    def document_status(self, events: list[dict[str, Any]]) -> list[int]:
        """The HTTP status of each document response among ``events``."""
        return [
            int(event["params"]["response"]["status"])
            for event in events
            if event.get("method") == "Network.responseReceived"
            and event["params"].get("type") == "Document"
        ]

    def screenshot(self, name: str) -> Path:
        """The whole page as ``test-artifacts/browser/NAME.png``; the path is printed."""
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {
                    "x": 0,
                    "y": 0,
                    "width": max(size["width"], 1),
                    "height": min(max(size["height"], 1), 8000),
                    "scale": 1,
                },
            },
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        print(f"screenshot: {path}")
        SAVED.append(path)
        return path

    def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> bool:
        return wait_until(predicate, timeout)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(
            f"Debian's chromium and chromium-driver are needed ({', '.join(missing)} missing): "
            "apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        # A DNS name a hostile site could rebind to 127.0.0.1 (for the Host check's test).
        f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


# --- the running proxy with its page ----------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _id() -> str:
    return f"<{uuid.uuid4().hex}@browser.example>"


def person_mail(mid: str, name: str, address: str, subject: str, body: str) -> bytes:
    """A reply in a thread from a person: normal under the bundled model, so it is held."""
    headers = {
        "From": f"{name} <{address}>",
        "To": f"me@{TEAM_DOMAIN}",
        "Subject": subject,
        "Message-ID": mid,
        "In-Reply-To": "<earlier@example.org>",
        "References": "<earlier@example.org>",
        "Date": "Sun, 22 Nov 2026 10:00:00 +0000",
    }
    return render(headers, body)


def newsletter(mid: str, address: str, subject: str) -> bytes:
    headers = {
        "From": f"News <{address}>",
        "To": f"me@{TEAM_DOMAIN}",
        "Subject": subject,
        "Message-ID": mid,
        "List-Id": f"<weekly.{address.split('@')[1]}>",
        "List-Unsubscribe": f"<mailto:leave@{address.split('@')[1]}>",
        "Precedence": "bulk",
    }
    return render(headers, "This week: articles and events. Unsubscribe at any time.")


@dataclass
class PageEnv:
    """A user, their config and state, the running proxy and where its page is."""

    dovecot: Dovecot
    user: str
    password: str
    directory: Path
    port: int
    account: str
    config: Path = field(init=False)
    proxy: ProxyProcess | None = None
    mids: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config = self.directory / "config.toml"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secret(self) -> str:
        return (self.state_dir / "web-secret").read_text(encoding="utf-8").strip()

    def write_config(self) -> None:
        password = _toml(f"printf %s {shlex.quote(self.password)}")
        self.config.write_text(
            f"""# commsproxy, as the browser tests use it
[proxy]
imap = "127.0.0.1:0"
smtp = "127.0.0.1:0"
state_dir = "{self.state_dir}"

[[login]]
username = "{self.user}"
password_command = {password}
upstream_imap = "imap://127.0.0.1:{self.dovecot.imap_port}"
upstream_smtp = "smtp+starttls://localhost:{self.dovecot.submission_port}"
cafile = "{self.dovecot.ca_file}"

[triage]
# People whose mail always comes at once.
vip = ["boss@example.com"]  # the boss, of course
gate_timeout = 5

[web]
enabled = true
port = {self.port}  # a free port for this test run
{quiet_batches()}
[accounts]
internal_domains = ["{TEAM_DOMAIN}"]
team_scan = 1

[accounts.acme]
name = "{self.account}"
domains = ["acme.example"]
""",
            encoding="utf-8",
        )

    def config_text(self) -> str:
        return self.config.read_text(encoding="utf-8")

    def where(self, mid: str) -> str | None:
        return where(self.dovecot, self.user, HOLD).get(mid)

    def wait_in(self, mid: str, mailbox: str, timeout: float = 20.0) -> None:
        assert wait_until(lambda: self.where(mid) == mailbox, timeout), (
            f"{mid} is in {self.where(mid)}, expected {mailbox}"
        )

    def imap(self) -> imaplib.IMAP4:
        """A connection straight to Dovecot, as the user's phone would make one."""
        conn = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port, timeout=30)
        conn.login(self.user, self.password)
        return conn

    def move_to_inbox(self, mid: str, mailbox: str) -> None:
        """The user drags a held message back to INBOX in the mail program (IMAP MOVE)."""
        self.move(mid, mailbox, "INBOX")

    def move(self, mid: str, mailbox: str, target: str) -> None:
        """The user drags a message to another mailbox in the mail program (IMAP MOVE)."""
        conn = self.imap()
        try:
            typ, _ = conn.select(f'"{mailbox}"')
            assert typ == "OK"
            typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", mid)
            uids = (data[0] or b"").decode().split()
            assert typ == "OK", data
            assert len(uids) == 1, uids
            typ, data = conn.uid("MOVE", uids[0], f'"{target}"')
            assert typ == "OK", data
        finally:
            conn.logout()

    def mailbox_ids(self, mailbox: str) -> list[str]:
        return [mid for mid, box in where(self.dovecot, self.user, (mailbox,)).items() if box]

    def send(self, message: bytes, recipients: list[str]) -> None:
        assert self.proxy is not None
        with smtplib.SMTP("127.0.0.1", self.proxy.smtp_port, timeout=30) as smtp:
            smtp.login(self.user, self.password)
            smtp.sendmail(f"{self.user}@{TEAM_DOMAIN}", recipients, message)

    def login_url(self, key: str | None = None) -> str:
        return f"{self.origin}/?key={key if key is not None else self.secret}"

    def page(self, path: str) -> str:
        return self.origin + path


def _web_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_page_env(dovecot: Dovecot, directory: Path) -> PageEnv:
    """``run`` with its page on a free port, mail of every kind in, one correction made."""
    user, password = dovecot.new_user()
    env = PageEnv(dovecot, user, password, directory, free_port(), f"Acme {uuid.uuid4().hex[:6]}")
    env.write_config()
    env.proxy = triage_proxy(env.config)
    try:
        assert wait_until(lambda: _web_listening(env.port), 20), env.proxy.log_text()
        _put_mail_in(env)
    except BaseException:
        env.proxy.stop()
        raise
    return env


def _put_mail_in(env: PageEnv) -> None:
    mids = env.mids
    people = {
        "anna": ("Anna Smith", "anna@example.org", "Re: notes from the meeting"),
        "bert": ("Bert Jones", "bert@partner.example", "Re: budget draft"),
        "carl": ("Carl Brown", "carl@example.net", "Re: the offsite plan"),
        "dora": ("Dora White", "dora@example.net", "Re: slides for Thursday"),
        "acme": ("Acme Buyer", "ceo@acme.example", "Re: Question about our order"),
    }
    for key, (name, address, subject) in people.items():
        mids[key] = _id()
        body = f"Thanks, I read your notes. Let's discuss the plan tomorrow.\r\n{name.split()[0]}"
        env.dovecot.deliver(env.user, person_mail(mids[key], name, address, subject, body))
    mids["news"] = _id()
    env.dovecot.deliver(
        env.user, newsletter(mids["news"], "noreply@news.example.org", "Weekly digest")
    )
    mids["promo"] = _id()
    env.dovecot.deliver(
        env.user, newsletter(mids["promo"], "offers@shop.example", "Deals this week")
    )
    mids["boss"] = _id()
    boss = {
        "From": "Boss <boss@example.com>",
        "To": f"me@{TEAM_DOMAIN}",
        "Subject": "contract today",
        "Message-ID": mids["boss"],
    }
    env.dovecot.deliver(env.user, render(boss, "Please call me about the contract."))
    expected = {
        "anna": "Later",
        "bert": "Later",
        "carl": "Later",
        "dora": "Later",
        "acme": "Later",
        "news": "Later/Bulk",
        "promo": "Later/Bulk",
        "boss": "INBOX",
    }
    assert env.proxy is not None
    proxy = env.proxy

    def triaged() -> bool:
        found = where(env.dovecot, env.user, HOLD)
        return all(found.get(mids[key]) == mailbox for key, mailbox in expected.items())

    assert wait_until(triaged, 30), (
        {key: env.where(mids[key]) for key in expected},
        proxy.log_text(),
    )
    # Mail out to the customer, through the proxy's SMTP side (filed as sent mail).
    mids["reply"] = _id()
    reply = {
        "From": f"Me <{env.user}@{TEAM_DOMAIN}>",
        "To": "Acme Buyer <ceo@acme.example>",
        "Subject": "Re: Question about our order",
        "Message-ID": mids["reply"],
        "In-Reply-To": mids["acme"],
    }
    env.send(render(reply, "It ships on Monday."), ["ceo@acme.example"])
    folder = f"Public/Accounts/{env.account}"
    assert wait_until(
        lambda: {mids["acme"], mids["reply"]} <= set(where(env.dovecot, env.user, (folder,))), 30
    ), "the customer's mail in and out was not filed"
    # A correction, as made in the mail program: Carl's held message dragged back to INBOX.
    env.move_to_inbox(mids["carl"], "Later")
    assert proxy.wait_for_log(r"came back from a hold mailbox", 20), proxy.log_text()


@pytest.fixture(scope="module")
def page_env(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PageEnv]:
    directory = tmp_path_factory.mktemp("commsproxy-browser")
    env = start_page_env(dovecot, directory)
    try:
        yield env
    finally:
        assert env.proxy is not None
        env.proxy.stop()
        assert "Traceback" not in env.proxy.log_text(), env.proxy.log_text()


@pytest.fixture
def signed_in(browser: Browser, page_env: PageEnv) -> Browser:
    """The browser holding the page's cookie: opened once with the key, as ``open`` does."""
    browser.get(page_env.login_url())
    assert browser.driver.current_url == page_env.page("/today"), browser.driver.current_url
    return browser
