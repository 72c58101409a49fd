"""Each action pressed in Chromium, and the server state checked afterwards.

The state is read where it lives: the mail on the real Dovecot over IMAP (and doveadm), the
sender rules in the config file (comments kept), the holding switch in the state directory.
The digest a release writes is opened in Chromium too, and its correction link followed
without the page's cookie, as a mail program would.
"""

from __future__ import annotations

import email
import email.policy
import re
import tomllib
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

from tests.browser.conftest import Browser, PageEnv, _id, person_mail
from tests.testbed.triage import wait_until

COMMENTS = (
    "# commsproxy, as the browser tests use it",
    "# People whose mail always comes at once.",
    "# the boss, of course",
    "# a free port for this test run",
)

pytestmark = pytest.mark.browser


def _bare(mid: str | None) -> str:
    return (mid or "").strip().strip("<>")


def row_of(browser: Browser, mid: str) -> WebElement:
    rows: list[WebElement] = browser.driver.find_elements(By.CSS_SELECTOR, "tr.held")
    for row in rows:
        if _bare(row.get_attribute("data-message-id")) == _bare(mid):
            return row
    raise AssertionError(f"no held row for {mid}")


def press(browser: Browser, env: PageEnv, find: Callable[[], WebElement]) -> str:
    """Click the button ``find`` finds; returns the flash message of the page the action comes
    back to. The page's live refresh may swap its content between finding and clicking: then
    the button is found again, as a person would."""
    for attempt in range(3):
        old = browser.driver.find_element(By.TAG_NAME, "html")
        try:
            find().click()
            break
        except StaleElementReferenceException:
            if attempt == 2:
                raise
    # The page the action comes back to, not the one the button was on (it may have a flash).
    WebDriverWait(browser.driver, 20).until(staleness_of(old))

    def flash() -> str:
        text: str = browser.driver.execute_script(
            "const f = document.getElementById('flash');"
            " return f && document.readyState === 'complete' ? f.textContent.trim() : ''"
        )
        return text

    assert browser.wait_for(flash, 20), browser.driver.page_source[:2000]
    browser.check_clean(env.origin)
    return flash()


def _field(button: WebElement, name: str) -> str | None:
    """The value a button sends for ``name``: its own name/value, or its form's input."""
    if button.get_attribute("name") == name:
        return button.get_attribute("value")
    form = button.find_element(By.XPATH, "./ancestor::form")
    inputs = form.find_elements(By.CSS_SELECTOR, f"[name='{name}']")
    return inputs[0].get_attribute("value") if inputs else None


def rules(env: PageEnv) -> dict[str, list[str]]:
    triage = tomllib.loads(env.config_text()).get("triage", {})
    return {
        "vip": list(triage.get("vip", [])),
        "never_urgent": list(triage.get("never_urgent", [])),
    }


def _matches(patterns: list[str], address: str) -> bool:
    domain = address.split("@")[1]
    return address in patterns or f"*@{domain}" in patterns


def test_deliver_moves_the_message_to_inbox(signed_in: Browser, page_env: PageEnv) -> None:
    browser, mid = signed_in, page_env.mids["anna"]
    flash = press(
        browser,
        page_env,
        lambda: row_of(browser, mid).find_element(By.CSS_SELECTOR, "[data-action='deliver']"),
    )
    # Named as the user knows it, not by its Message-ID.
    assert "\u201cRe: notes from the meeting\u201d from anna@example.org" in flash, flash
    assert mid.strip("<>") not in flash, flash
    page_env.wait_in(mid, "INBOX")
    with pytest.raises(AssertionError):
        row_of(browser, mid)
    browser.screenshot("after-deliver")


def test_always_urgent_adds_the_sender_to_vip_keeping_comments(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser = signed_in
    press(
        browser,
        page_env,
        lambda: row_of(browser, page_env.mids["bert"]).find_element(
            By.CSS_SELECTOR, "[data-action='always-urgent']"
        ),
    )
    text = page_env.config_text()
    assert _matches(rules(page_env)["vip"], "bert@partner.example"), text
    assert "boss@example.com" in rules(page_env)["vip"], text
    for comment in COMMENTS:
        assert comment in text, text
    # The running proxy took the rule: Bert's next message comes at once.
    fresh = _id()
    page_env.dovecot.deliver(
        page_env.user,
        person_mail(fresh, "Bert Jones", "bert@partner.example", "Re: budget, again", "Bert"),
    )
    page_env.wait_in(fresh, "INBOX")
    assert page_env.proxy is not None
    assert page_env.proxy.wait_for_log(r"urgent: VIP sender \(bert@partner\.example\)", 10), (
        page_env.proxy.log_text()
    )


def test_never_urgent_adds_the_sender_to_never_urgent(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser = signed_in
    sender = "noreply@news.example.org"

    def button() -> WebElement:
        row = row_of(browser, page_env.mids["news"])
        found: WebElement = row.find_element(By.CSS_SELECTOR, "[data-action='never-urgent']")
        return found

    assert _field(button(), "pattern") == sender
    press(browser, page_env, button)
    text = page_env.config_text()
    assert _matches(rules(page_env)["never_urgent"], sender), text
    for comment in COMMENTS:
        assert comment in text, text


def _release_button(browser: Browser, batch: str) -> WebElement:
    buttons: list[WebElement] = browser.driver.find_elements(
        By.CSS_SELECTOR, "[data-action='release']"
    )
    for button in buttons:
        if _field(button, "batch") == batch:
            return button
    raise AssertionError(f"no release button for batch {batch}")


def test_release_empties_the_batch_and_writes_a_digest(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser, mids = signed_in, page_env.mids
    held = [mids["bert"], mids["acme"]]
    assert all(page_env.where(mid) == "Later" for mid in held)
    press(browser, page_env, lambda: _release_button(browser, "later"))
    for mid in held:
        page_env.wait_in(mid, "INBOX")
    assert not page_env.mailbox_ids("Later")
    assert {page_env.where(mids["news"]), page_env.where(mids["promo"])} == {"Later/Bulk"}
    assert digest_message(page_env) is not None
    # The day's picture counts the release: its messages as released, and one interruption.
    browser.get(page_env.page("/day"))
    browser.check_clean(page_env.origin)
    text = browser.driver.find_element(By.ID, "page-day").text
    released = re.search(r"released \((\d+)\)", text)
    assert released is not None, text
    assert int(released.group(1)) >= len(held), text
    avoided = int(browser.driver.find_element(By.ID, "interruptions-today").text)
    assert avoided < 7, text  # seven were held; the release brought some back at once
    browser.screenshot("day-after-release")


def digest_message(env: PageEnv) -> EmailMessage | None:
    conn = env.imap()
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("SEARCH", "KEYWORD", "$Digest")
        assert typ == "OK", data
        uids = (data[0] or b"").decode().split()
        if not uids:
            return None
        typ, data = conn.uid("FETCH", uids[-1], "(BODY.PEEK[])")
        assert typ == "OK", data
        raw = next(part[1] for part in data if isinstance(part, tuple))
    finally:
        conn.logout()
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _open_digest(browser: Browser, env: PageEnv, directory: Path) -> None:
    """The digest's HTML part, opened in Chromium as a file (as a mail program shows it)."""
    message = digest_message(env)
    assert message is not None, "no digest in INBOX"
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None, f"the digest has no text/html part: {message.get_content_type()}"
    page = directory / "digest.html"
    page.write_text(html_part.get_content(), encoding="utf-8")
    browser.get(page.as_uri())


def test_the_digest_renders_in_the_browser(
    browser: Browser, page_env: PageEnv, tmp_path: Path
) -> None:
    _open_digest(browser, page_env, tmp_path)
    console, events = browser.logs()
    assert not [e for e in console if e.get("level") == "SEVERE"], console
    requested = [
        e["params"]["request"]["url"]
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    assert all(u.startswith(("file:", "data:")) for u in requested), requested  # no remote images
    text = browser.driver.find_element(By.TAG_NAME, "body").text
    for subject in ("Re: budget draft", "Re: Question about our order", "Re: slides for Thursday"):
        assert subject in text, text
    assert "bert@partner.example" in text, text
    assert page_env.account in text, text  # grouped by customer account
    browser.screenshot("digest")


def test_the_digest_correction_link_adds_the_rule(
    browser: Browser, page_env: PageEnv, tmp_path: Path
) -> None:
    _open_digest(browser, page_env, tmp_path)
    links = [a.get_attribute("href") or "" for a in browser.driver.find_elements(By.TAG_NAME, "a")]
    prefix = f"{page_env.origin}/confirm/always-urgent?"
    confirm = [link for link in links if link.startswith(prefix) and "acme.example" in link]
    assert confirm, links
    # Followed from the mail program: no cookie, a confirmation first, the rule after the POST.
    browser.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    before = page_env.config_text()
    browser.get(confirm[0])
    browser.check_clean(page_env.origin)
    assert page_env.config_text() == before  # GET changes nothing
    assert "ceo@acme.example" in browser.driver.find_element(By.TAG_NAME, "body").text
    browser.screenshot("confirm-always-urgent")
    submit = browser.driver.find_element(By.CSS_SELECTOR, "form[method='post'] button")
    submit.click()
    assert wait_until(lambda: _matches(rules(page_env)["vip"], "ceo@acme.example"), 15), (
        page_env.config_text()
    )
    browser.check_clean(page_env.origin)
    for comment in COMMENTS:
        assert comment in page_env.config_text()
    # A short confirmation: no config path, and no links to pages that refuse this visitor.
    body = browser.driver.find_element(By.TAG_NAME, "body").text
    assert "ceo@acme.example is always urgent now" in body, body
    assert str(page_env.config) not in body, body
    assert "config.toml" not in body, body
    assert browser.driver.find_elements(By.TAG_NAME, "nav") == [], body
    assert "commsproxy open" in body, body
    browser.screenshot("confirmed-always-urgent")


def _set_until(browser: Browser, button: WebElement, until: datetime) -> None:
    form = button.find_element(By.XPATH, "./ancestor::form")
    fields = form.find_elements(By.CSS_SELECTOR, "[name='until']")
    if not fields:
        return
    kind = fields[0].get_attribute("type")
    value = until.strftime("%H:%M") if kind == "time" else until.isoformat(timespec="minutes")
    browser.driver.execute_script("arguments[0].value = arguments[1]", fields[0], value)


def test_focus_off_then_on(signed_in: Browser, page_env: PageEnv) -> None:
    browser, mids = signed_in, page_env.mids
    switch = page_env.state_dir / "holding-stopped"
    assert not switch.exists()
    button = browser.driver.find_element(By.CSS_SELECTOR, "[data-action='focus-off']")
    now = datetime.now().astimezone()
    _set_until(browser, button, min(now + timedelta(hours=2), now.replace(hour=23, minute=59)))
    # Typing the time keeps the page's refresh away (it never swaps content under an input).
    flash = press(browser, page_env, lambda: button)
    assert "paused" in flash, flash
    assert switch.exists()
    paused_note = browser.driver.find_element(By.ID, "page-today").text
    assert "paused" in paused_note, paused_note
    for mid in (mids["news"], mids["promo"]):  # everything held comes out
        page_env.wait_in(mid, "INBOX")
    paused = _id()
    page_env.dovecot.deliver(
        page_env.user,
        person_mail(paused, "Eve Green", "eve@example.org", "Re: the report", "Eve"),
    )
    assert wait_until(lambda: page_env.where(paused) == "INBOX", 15)
    # Decided, and delivered at once because holding is paused.
    assert wait_until(lambda: {"$Triaged", "$NotHeld"} <= _flags(page_env, paused), 15)
    assert page_env.where(paused) == "INBOX"
    browser.screenshot("focus-off")

    press(
        browser,
        page_env,
        lambda: browser.driver.find_element(By.CSS_SELECTOR, "[data-action='focus-on']"),
    )
    assert not switch.exists()
    resumed = _id()
    page_env.dovecot.deliver(
        page_env.user,
        person_mail(resumed, "Fay Black", "fay@example.org", "Re: the report", "Fay"),
    )
    page_env.wait_in(resumed, "Later")  # held again


def _flags(env: PageEnv, mid: str) -> set[str]:
    conn = env.imap()
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", mid)
        uids = (data[0] or b"").decode().split()
        if typ != "OK" or not uids:
            return set()
        typ, data = conn.uid("FETCH", uids[0], "(FLAGS)")
        first = data[0]
        line = first.decode() if isinstance(first, bytes) else ""
    finally:
        conn.logout()
    match = re.search(r"FLAGS \(([^)]*)\)", line)
    return set(match.group(1).split()) if match else set()
