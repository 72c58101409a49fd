"""Access tokens: refreshed ahead of expiry, once for all concurrent callers, typed failures."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from commsproxy.oauth.errors import ProviderError, SignInNeeded, Throttled
from commsproxy.oauth.http import HttpRequest, HttpResponse
from commsproxy.oauth.providers import MICROSOFT365, preset_provider
from commsproxy.oauth.refresh import AccessTokens
from commsproxy.oauth.tokens import Secret
from commsproxy.oauth.vault import KeyringStore

from .oauth_fakes import FakeClock, FakeTransport, MemoryKeyring, reply

PROVIDER = preset_provider(MICROSOFT365, "client-id")
ACCOUNT = "ann@contoso.test"


def store_with(token: str | None) -> KeyringStore:
    store = KeyringStore(MemoryKeyring())
    if token is not None:
        store.save(ACCOUNT, Secret(token))
    return store


def issuing(expires_in: int = 3600) -> FakeTransport:
    count = 0
    lock = threading.Lock()

    def answer(request: HttpRequest) -> HttpResponse:
        nonlocal count
        time.sleep(0.05)  # a slow provider: concurrent callers pile up behind one refresh
        with lock:
            count += 1
            n = count
        return reply(access_token=f"AT-{n}", refresh_token=f"RT-{n}", expires_in=expires_in)

    return FakeTransport(answer)


async def test_concurrent_callers_share_one_refresh() -> None:
    transport = issuing()
    tokens = AccessTokens(PROVIDER, ACCOUNT, store_with("RT-0"), transport=transport)
    results = await asyncio.gather(*(tokens.get() for _ in range(20)))
    assert {token.reveal() for token in results} == {"AT-1"}
    assert len(transport.requests) == 1
    assert transport.requests[0].form["refresh_token"] == "RT-0"
    assert tokens.refreshes == 1


async def test_refreshes_ahead_of_expiry_and_keeps_a_rotated_refresh_token() -> None:
    clock = FakeClock()
    store = store_with("RT-0")
    transport = issuing(expires_in=3600)
    tokens = AccessTokens(PROVIDER, ACCOUNT, store, transport=transport, clock=clock, margin=300)
    assert (await tokens.get()).reveal() == "AT-1"
    clock.now += 3600 - 301  # still 301 s left: the cached token
    assert (await tokens.get()).reveal() == "AT-1"
    clock.now += 2  # 299 s left, inside the margin: refresh
    assert (await tokens.get()).reveal() == "AT-2"
    assert transport.requests[1].form["refresh_token"] == "RT-1"  # the rotated one was kept
    assert store.load(ACCOUNT) == Secret("RT-2")


async def test_forget_makes_the_next_get_refresh() -> None:
    transport = issuing()
    tokens = AccessTokens(PROVIDER, ACCOUNT, store_with("RT-0"), transport=transport)
    await tokens.get()
    tokens.forget()
    assert (await tokens.get()).reveal() == "AT-2"


async def test_never_signed_in() -> None:
    transport = issuing()
    tokens = AccessTokens(PROVIDER, ACCOUNT, store_with(None), transport=transport)
    with pytest.raises(SignInNeeded) as info:
        await tokens.get()
    assert info.value.reason == f"{ACCOUNT} has not signed in yet: run `commsproxy login {ACCOUNT}`"
    assert transport.requests == []


async def test_invalid_grant_needs_sign_in_and_is_not_asked_again() -> None:
    transport = FakeTransport(
        lambda request: reply(400, error="invalid_grant", error_description="AADSTS700082: expired")
    )
    store = store_with("RT-old")
    tokens = AccessTokens(PROVIDER, ACCOUNT, store, transport=transport)
    callers = await asyncio.gather(*(tokens.get() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(err, SignInNeeded) for err in callers)
    reason = callers[0].reason  # type: ignore[union-attr]
    assert "\n" not in reason
    assert reason.endswith(f"run `commsproxy login {ACCOUNT}`")
    assert len(transport.requests) == 1
    # a new sign-in stores another refresh token: refreshing resumes by itself
    transport.answer = lambda request: reply(access_token="AT-new", expires_in=3600)
    store.save(ACCOUNT, Secret("RT-new"))
    assert (await tokens.get()).reveal() == "AT-new"


async def test_throttling_is_typed_and_respected() -> None:
    clock = FakeClock()
    transport = FakeTransport(lambda request: reply(429, headers={"Retry-After": "30"}, error="x"))
    tokens = AccessTokens(PROVIDER, ACCOUNT, store_with("RT"), transport=transport, clock=clock)
    with pytest.raises(Throttled) as info:
        await tokens.get()
    assert info.value.retry_after == 30
    clock.now += 10
    with pytest.raises(Throttled) as again:
        await tokens.get()
    assert again.value.retry_after == 20
    assert len(transport.requests) == 1  # no request while the provider asked us to wait
    clock.now += 21
    transport.answer = lambda request: reply(access_token="AT", expires_in=3600)
    assert (await tokens.get()).reveal() == "AT"


async def test_other_errors_are_provider_errors() -> None:
    transport = FakeTransport(lambda request: HttpResponse(500, b"<html>oops</html>", {}))
    tokens = AccessTokens(PROVIDER, ACCOUNT, store_with("RT"), transport=transport)
    with pytest.raises(ProviderError, match=r"HTTP 500"):
        await tokens.get()


async def test_no_token_in_logs_or_reprs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport = issuing()
    store = store_with("RT-secret-0")
    tokens = AccessTokens(PROVIDER, ACCOUNT, store, transport=transport)
    token = await tokens.get()
    logging.getLogger("test").info("token %r %s %s", token, token, f"{token}")
    transport.answer = lambda request: reply(400, error="invalid_grant")
    tokens.forget()
    with pytest.raises(SignInNeeded):
        await tokens.get()
    text = caplog.text + repr(tokens._tokens) + repr(transport.requests)
    for secret in ("AT-1", "RT-1", "RT-secret-0"):
        assert secret not in text
    assert "<secret, 4 characters>" in caplog.text


async def test_tokens_shorter_than_the_margin_are_used_for_half_their_life() -> None:
    """A server issuing 2 s tokens with a 300 s margin: without the half-life rule every caller
    would refresh, one after another, behind the lock."""
    clock = FakeClock()
    transport = issuing(expires_in=2)
    tokens = AccessTokens(
        PROVIDER, ACCOUNT, store_with("RT-0"), transport=transport, clock=clock, margin=300
    )
    results = await asyncio.gather(*(tokens.get() for _ in range(10)))
    assert {token.reveal() for token in results} == {"AT-1"}
    clock.now += 0.9  # 1.1 s left of 2: still the cached one
    assert (await tokens.get()).reveal() == "AT-1"
    clock.now += 0.2  # 0.9 s left: refresh
    assert (await tokens.get()).reveal() == "AT-2"
    assert tokens.refreshes == 2
