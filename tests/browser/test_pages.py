"""Each page of the local page loads in Chromium with real content, clean, and only locally.

"Clean": no SEVERE console entry (a Content-Security-Policy violation is one, so this is the
check that the strict CSP does not break the page) and no request leaving 127.0.0.1. Without
the secret, the page is refused and says how to open it.
"""

from __future__ import annotations

import functools
import html
import http.server
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement

from tests.browser.conftest import REBOUND, Browser, PageEnv

PAGES = ("/today", "/day", "/accounts", "/model")

pytestmark = pytest.mark.browser


def _bare(mid: str | None) -> str:
    return (mid or "").strip().strip("<>")


def held_rows(browser: Browser) -> dict[str, WebElement]:
    rows = browser.driver.find_elements(By.CSS_SELECTOR, "tr.held")
    return {_bare(row.get_attribute("data-message-id")): row for row in rows}


def _main_text(browser: Browser, page: str) -> str:
    main = browser.driver.find_element(By.ID, f"page-{page}")
    text: str = main.text
    return text


def _nav_links(browser: Browser) -> set[str]:
    hrefs = [a.get_attribute("href") or "" for a in browser.driver.find_elements(By.TAG_NAME, "a")]
    return {urllib.parse.urlsplit(h).path for h in hrefs}


def test_today_shows_what_is_held_with_a_live_countdown(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser, mids = signed_in, page_env.mids
    urls = browser.check_clean(page_env.origin)
    assert any(u.endswith(".css") for u in urls), urls  # the stylesheet came from the page
    text = _main_text(browser, "today")
    health = browser.driver.find_element(
        By.CSS_SELECTOR, f"section.login[data-login='{page_env.user}'] .health"
    ).text
    assert "triage works" in health, health
    rows = held_rows(browser)
    for key, sender, subject in (
        ("anna", "anna@example.org", "Re: notes from the meeting"),
        ("bert", "bert@partner.example", "Re: budget draft"),
        ("dora", "dora@example.net", "Re: slides for Thursday"),
        ("news", "noreply@news.example.org", "Weekly digest"),
        ("promo", "offers@shop.example", "Deals this week"),
    ):
        row = rows.get(_bare(mids[key]))
        assert row is not None, f"no held row for {key}: {sorted(rows)}"
        row_text = row.text
        assert subject in row_text, row_text
        assert sender in row_text or sender.split("@")[0].title() in row_text, row_text
        assert row.get_attribute("data-login") == page_env.user
        why = row.find_elements(By.CSS_SELECTOR, ".why, [data-why], td.why")
        assert why, f"no reason shown for {key}: {row_text}"
        assert why[0].text.strip(), f"no reason shown for {key}: {row_text}"
        actions = {
            b.get_attribute("data-action")
            for b in row.find_elements(By.CSS_SELECTOR, "[data-action]")
        }
        assert "deliver" in actions, actions
    # Urgent mail and the message the user brought back are not held; the urgent one is
    # among the mail delivered at once.
    assert _bare(mids["boss"]) not in rows
    assert _bare(mids["carl"]) not in rows
    delivered = {
        _bare(row.get_attribute("data-message-id")): row.text
        for row in browser.driver.find_elements(By.CSS_SELECTOR, "tr.delivered")
    }
    assert "contract today" in delivered.get(_bare(mids["boss"]), ""), delivered
    # The correction made in the mail program is on the page.
    assert "Re: the offsite plan" in text, text
    # The next release: 12 hours from now (the test's batches), with a countdown that ticks.
    countdown = browser.driver.find_element(By.CSS_SELECTOR, "[data-release-at]")
    release_at = datetime.fromisoformat(countdown.get_attribute("data-release-at") or "")
    left = release_at.astimezone(UTC) - datetime.now(UTC)
    assert timedelta(hours=11) < left <= timedelta(hours=12, minutes=1), release_at
    assert re.fullmatch(r"in 1[12] h \d\d min", countdown.text), countdown.text
    # It ticks: with a release 90 s away (set on the element), the seconds count down.
    soon = (datetime.now(UTC) + timedelta(seconds=90)).isoformat()
    browser.driver.execute_script(
        "arguments[0].setAttribute('data-release-at', arguments[1])", countdown, soon
    )
    assert browser.wait_for(lambda: re.fullmatch(r"in 1 min \d\d s", countdown.text), 3)
    first = countdown.text
    time.sleep(1.1)  # the countdown's own second, not a schedule
    assert countdown.text != first, f"the countdown did not move: {first!r}"
    browser.driver.refresh()  # back to what the server rendered, for the screenshot
    assert set(PAGES) <= _nav_links(browser)
    browser.screenshot("today")


def test_today_buttons_read_as_groups_at_1280_and_800_px(
    signed_in: Browser, page_env: PageEnv
) -> None:
    """Held rows: "Always urgent: this sender | whole domain" stays one piece on one line,
    apart from "Never urgent"; the vip sender's row offers to stop the rule; both batches due
    at the same moment are named. At 1280 px and at 800 px, without sideways scrolling."""
    browser, mids = signed_in, page_env.mids
    driver = browser.driver
    nxt = driver.find_element(By.CSS_SELECTOR, "p.next")
    names = [b.text for b in nxt.find_elements(By.CSS_SELECTOR, ".next-batch")]
    assert sorted(names) == ["bulk", "later"], nxt.text  # the test's batches share a time
    boss = driver.find_element(
        By.CSS_SELECTOR, f"tr.delivered[data-message-id='{_bare(mids['boss'])}']"
    )
    actions = [b.get_attribute("data-action") for b in boss.find_elements(By.TAG_NAME, "button")]
    assert actions == ["forget-sender"], actions  # "never urgent" would change nothing
    assert "Stop treating as always urgent" in boss.text
    try:
        for width in (1280, 800):
            driver.set_window_size(width, 900)
            driver.refresh()
            row = held_rows(browser)[_bare(mids["bert"])]
            group = row.find_element(By.CSS_SELECTOR, ".button-group")
            assert group.text.replace("\n", " ").startswith("Always urgent:"), group.text
            sender, domain = group.find_elements(By.CSS_SELECTOR, "[data-action='always-urgent']")
            assert (sender.text, domain.text) == ("this sender", "whole domain")
            never = row.find_element(By.CSS_SELECTOR, "[data-action='never-urgent']")
            assert sender.rect["y"] == domain.rect["y"], (width, sender.rect, domain.rect)
            assert domain.rect["x"] > sender.rect["x"]
            # "Never urgent" is never between the two: on a line below, or after the group.
            below = never.rect["y"] > sender.rect["y"]
            after = never.rect["y"] == sender.rect["y"] and never.rect["x"] > domain.rect["x"]
            assert below or after, (width, never.rect, sender.rect, domain.rect)
            wide = driver.execute_script(
                "const d = document.documentElement; return d.scrollWidth - d.clientWidth"
            )
            assert wide <= 0, f"{width} px: {wide} px of sideways scrolling"
            browser.screenshot(f"today-{width}")
    finally:
        driver.set_window_size(1280, 900)


def test_day_shows_the_chart_and_interruptions_avoided(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser = signed_in
    browser.get(page_env.page("/day"))
    browser.check_clean(page_env.origin)
    main = browser.driver.find_element(By.ID, "page-day")
    charts = main.find_elements(By.TAG_NAME, "svg")
    assert charts, "no chart on /day"
    assert charts[0].size["height"] > 50, charts[0].size
    assert charts[0].size["width"] > 100, charts[0].size
    bars = charts[0].find_elements(By.CSS_SELECTOR, "rect, path, polyline")
    assert bars, "the chart draws nothing"
    today = browser.driver.find_element(By.ID, "interruptions-today").text
    week = browser.driver.find_element(By.ID, "interruptions-week").text
    today_n = int(re.findall(r"\d+", today)[0])
    week_n = int(re.findall(r"\d+", week)[0])
    assert today_n >= 1, today  # seven messages were held this morning
    assert week_n >= today_n, (today, week)
    browser.screenshot("day")


def test_accounts_shows_the_customers_mail_in_and_out(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser = signed_in
    browser.get(page_env.page("/accounts"))
    browser.check_clean(page_env.origin)
    text = _main_text(browser, "accounts")
    assert page_env.account in text, text
    rows = {
        (row.get_attribute("class"), _bare(row.get_attribute("data-message-id"))): row.text
        for row in browser.driver.find_elements(By.CSS_SELECTOR, "tr.in, tr.out")
    }
    came_in = rows.get(("in", _bare(page_env.mids["acme"])), "")
    assert "ceo@acme.example" in came_in, rows
    assert "Re: Question about our order" in came_in, rows
    went_out = rows.get(("out", _bare(page_env.mids["reply"])), "")
    assert page_env.user in went_out, rows  # who answered
    assert "nothing waiting" in text, text  # the user's reply came after the customer's mail
    browser.screenshot("accounts")


def test_model_shows_the_model_and_this_weeks_corrections(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser = signed_in
    browser.get(page_env.page("/model"))
    browser.check_clean(page_env.origin)
    in_use = browser.driver.find_element(By.ID, "model-in-use").text
    assert "urgency" in in_use, in_use  # which model file: the bundled one in CI, or trained
    trained = browser.driver.find_element(By.ID, "model-trained").text
    assert re.search(r"\d{4}", trained), trained
    corrected, decided = map(
        int, re.findall(r"\d+", browser.driver.find_element(By.ID, "model-corrections").text)[:2]
    )
    assert corrected == 1, (corrected, decided)  # Carl's message, dragged back to INBOX
    assert decided >= 8, (corrected, decided)  # every message delivered this morning
    browser.screenshot("model")


def test_the_page_has_an_icon(signed_in: Browser, page_env: PageEnv) -> None:
    """Browsers ask for /favicon.ico by themselves; a 404 there is a console error too."""
    signed_in.check_clean(page_env.origin)
    assert not signed_in.icon_errors, signed_in.icon_errors


def test_a_correction_in_the_mail_program_shows_up_on_the_page(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser, mids = signed_in, page_env.mids
    assert _bare(mids["dora"]) in held_rows(browser)
    page_env.move_to_inbox(mids["dora"], "Later")

    def shown() -> bool:
        # Read in one script: the page swaps its content in place when it refreshes itself.
        held, text = browser.driver.execute_script(
            "return [[...document.querySelectorAll('tr.held')].map(r => r.dataset.messageId),"
            " document.getElementById('page-today').innerText]"
        )
        return _bare(mids["dora"]) not in map(_bare, held) and "Re: slides for Thursday" in text

    # The page refreshes itself every 5 s; a slow machine may need a later turn.
    assert browser.wait_for(shown, 20), _main_text(browser, "today")
    assert browser.driver.current_url == page_env.page("/today")
    browser.check_clean(page_env.origin)


def test_without_the_secret_the_page_is_refused(browser: Browser, page_env: PageEnv) -> None:
    browser.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    for url in (page_env.page("/today"), page_env.login_url("not-the-secret")):
        browser.get(url)
        _, events = browser.logs()
        assert browser.document_status(events)[-1] == 403, url
        body = browser.driver.find_element(By.TAG_NAME, "body").text
        assert body.count("commsproxy open") == 1, body  # said once
        assert "`" not in body, body  # as code, not Markdown backticks
        code = browser.driver.find_elements(By.TAG_NAME, "code")
        assert [c.text for c in code] == ["commsproxy open"], body
        assert not held_rows(browser), "a refused page shows held mail"
        assert not browser.driver.get_cookies(), browser.driver.get_cookies()
    browser.screenshot("refused")
    # An action without the cookie changes nothing either.
    data = urllib.parse.urlencode({"login": page_env.user, "message_id": page_env.mids["anna"]})
    request = urllib.request.Request(
        page_env.page("/actions/deliver"),
        data=data.encode(),
        headers={"Origin": page_env.origin},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            status = answer.status
    except urllib.error.HTTPError as refused:
        status = refused.code
    assert status == 403
    assert page_env.where(page_env.mids["anna"]) == "Later"


def test_a_name_rebound_to_127_0_0_1_is_refused(browser: Browser, page_env: PageEnv) -> None:
    """DNS rebinding: a hostile site's name resolving to 127.0.0.1 gets the refusal, even with
    the right key, and no cookie."""
    browser.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.get(f"http://{REBOUND}:{page_env.port}/?key={page_env.secret}")
    _, events = browser.logs()
    assert browser.document_status(events)[-1] == 403
    body = browser.driver.find_element(By.TAG_NAME, "body").text
    assert "127.0.0.1" in body, body
    assert not browser.driver.get_cookies()


def test_a_form_on_another_site_cannot_press_a_button(
    signed_in: Browser, page_env: PageEnv, tmp_path: Path
) -> None:
    """CSRF: with the page's cookie in the browser, a form on another site that posts to an
    action (even with a made-up token) is refused, and the message stays held."""
    mid = page_env.mids["anna"]
    (tmp_path / "hostile.html").write_text(
        f"""<!doctype html><form method="post"
        action="{page_env.origin}/actions/deliver">
        <input type="hidden" name="login" value="{page_env.user}">
        <input type="hidden" name="message_id" value="{html.escape(mid)}">
        <input type="hidden" name="csrf" value="made-up">
        <button id="go" type="submit">win a prize</button></form>""",
        encoding="utf-8",
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as hostile:
        thread = threading.Thread(target=hostile.serve_forever, daemon=True)
        thread.start()
        try:
            port = hostile.server_address[1]
            signed_in.get(f"http://{REBOUND}:{port}/hostile.html")
            signed_in.driver.find_element(By.ID, "go").click()
            assert signed_in.wait_for(
                lambda: signed_in.driver.current_url.startswith(page_env.origin), 10
            )
            _, events = signed_in.logs()
        finally:
            hostile.shutdown()
            thread.join(5)
    assert signed_in.document_status(events)[-1] == 403
    assert page_env.where(mid) == "Later"


def test_snoozed_and_waiting_for_an_answer_show_what_run_recorded(
    signed_in: Browser, page_env: PageEnv
) -> None:
    """The boss's message dragged into Snoozed/Tomorrow in the mail program shows under
    "Snoozed" with its sender, subject, box and tomorrow morning's time, as the running
    snooze part noticed it; the reply sent to the customer through the proxy waits for an
    answer."""
    browser, mids = signed_in, page_env.mids
    page_env.move(mids["boss"], "INBOX", "Snoozed/Tomorrow")

    def listed(selector: str, mid: str) -> str:
        rows = browser.driver.execute_script(
            "return [...document.querySelectorAll(arguments[0])]"
            ".map(r => [r.dataset.messageId, r.innerText])",
            selector,
        )
        return next((text for found, text in rows if _bare(found) == _bare(mid)), "")

    # The page refreshes itself every 5 s; the snooze part looks at its boxes every 5 s.
    assert browser.wait_for(lambda: listed("li.snoozed-mail", mids["boss"]), 30), _main_text(
        browser, "today"
    )
    snoozed = listed("li.snoozed-mail", mids["boss"])
    assert "contract today from Boss <boss@example.com>: back" in snoozed, snoozed
    assert snoozed.endswith("08:00 (Tomorrow)"), snoozed
    waiting = listed("li.waiting-for-answer", mids["reply"])
    assert re.match(
        r"Re: Question about our order: sent to ceo@acme\.example (at|on) .*, reminder on ", waiting
    ), waiting
    browser.check_clean(page_env.origin)
    browser.driver.refresh()
    browser.screenshot("today-snoozed-waiting")
