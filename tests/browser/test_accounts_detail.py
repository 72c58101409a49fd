"""Accounts in Chromium: what was kept when each message was filed, against a real ``run``.

The customer's message came in from the test Dovecot and the user's reply went out through the
proxy's SMTP side (``conftest.start_page_env``); both were filed into the account's folder.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import Browser, PageEnv

pytestmark = pytest.mark.browser


def _bare(mid: str | None) -> str:
    return (mid or "").strip().strip("<>")


def test_accounts_shows_the_replys_recipient_and_subject(
    signed_in: Browser, page_env: PageEnv
) -> None:
    browser = signed_in
    browser.get(page_env.page("/accounts"))
    browser.check_clean(page_env.origin)
    rows = {
        (row.get_attribute("class"), _bare(row.get_attribute("data-message-id"))): row.text
        for row in browser.driver.find_elements(By.CSS_SELECTOR, "tr.in, tr.out")
    }
    went_out = rows.get(("out", _bare(page_env.mids["reply"])), "")
    assert page_env.user in went_out, rows  # who answered
    assert "ceo@acme.example" in went_out, rows  # to whom, from the filed copy's To
    assert "Re: Question about our order" in went_out, rows  # its subject
    assert "(not kept)" not in went_out, rows
    came_in = rows.get(("in", _bare(page_env.mids["acme"])), "")
    assert "Acme Buyer <ceo@acme.example>" in came_in, rows  # the sender, name and address
    assert f"by {page_env.user}" in came_in, rows  # the reply filed after it answered it
    browser.screenshot("accounts-detail")
