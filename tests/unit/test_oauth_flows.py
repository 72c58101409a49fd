"""The loopback listener on a real socket, the browser flow played by a test, the device grant."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from commsproxy.oauth.browser import sign_in_with_browser
from commsproxy.oauth.device import DeviceCode, poll_device_token, sign_in_with_device
from commsproxy.oauth.errors import ProviderError, SignInFailed
from commsproxy.oauth.http import HttpRequest, HttpResponse
from commsproxy.oauth.loopback import LoopbackListener, Redirect
from commsproxy.oauth.providers import OAuthProvider

from .oauth_fakes import FakeClock, FakeTransport, reply

PROVIDER = OAuthProvider(
    "custom",
    "client",
    "https://idp.test/authorize",
    "https://idp.test/token",
    ("mail", "offline_access"),
    device_endpoint="https://idp.test/device",
)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, err.read().decode()


def wait_in_thread(listener: LoopbackListener) -> tuple[threading.Thread, list[Redirect]]:
    got: list[Redirect] = []
    thread = threading.Thread(target=lambda: got.append(listener.wait(10)))
    thread.start()
    return thread, got


def test_listener_takes_one_redirect_with_its_state() -> None:
    with LoopbackListener("good-state") as listener:
        assert listener.redirect_uri == f"http://127.0.0.1:{listener.port}"
        assert listener.port > 0
        thread, got = wait_in_thread(listener)
        base = listener.redirect_uri + "/"
        assert get(base + "favicon.ico")[0] == 404
        status, page = get(base + "?" + urlencode({"code": "evil", "state": "other"}))
        assert status == 400
        assert "not started here" in page
        status, page = get(base + "?" + urlencode({"code": "the-code", "state": "good-state"}))
        assert status == 200
        assert "close this window" in page
        thread.join(5)
    assert got == [Redirect("the-code")]


def test_listener_reports_the_providers_error() -> None:
    with LoopbackListener("s") as listener:
        thread, got = wait_in_thread(listener)
        args = {"error": "access_denied", "error_description": "User said no", "state": "s"}
        assert get(listener.redirect_uri + "/?" + urlencode(args))[0] == 200
        thread.join(5)
    assert got == [Redirect(None, "access_denied", "User said no")]


def test_listener_times_out() -> None:
    ticks = iter([0.0, 0.5, 2.0])
    with LoopbackListener("s") as listener, pytest.raises(SignInFailed, match="within 1 s"):
        listener.wait(1, clock=lambda: next(ticks))


def tokens_for(expected_code: str) -> FakeTransport:
    def answer(request: HttpRequest) -> HttpResponse:
        if request.form.get("code") != expected_code:
            return reply(400, error="invalid_grant")
        return reply(
            access_token="AT-1", refresh_token="RT-1", expires_in=3600, token_type="Bearer"
        )

    return FakeTransport(answer)


def test_browser_flow_played_by_a_test() -> None:
    """The test follows the authorization URL as a browser would after the user signed in."""
    transport = tokens_for("code-123")
    followed: list[int] = []
    threads: list[threading.Thread] = []

    def browser(url: str) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        assert params["code_challenge_method"] == "S256"
        back = (
            params["redirect_uri"]
            + "/?"
            + urlencode({"code": "code-123", "state": params["state"]})
        )
        threads.append(threading.Thread(target=lambda: followed.append(get(back)[0])))
        threads[-1].start()

    clock = FakeClock()
    tokens = sign_in_with_browser(
        PROVIDER, login="me@x.test", show_url=browser, transport=transport, timeout=10, clock=clock
    )
    assert tokens.access_token.reveal() == "AT-1"
    assert tokens.refresh_token is not None
    assert tokens.refresh_token.reveal() == "RT-1"
    assert tokens.expires_at == clock.now + 3600
    (request,) = transport.requests
    assert request.form["grant_type"] == "authorization_code"
    assert request.form["redirect_uri"].startswith("http://127.0.0.1:")
    assert len(request.form["code_verifier"]) == 43
    threads[0].join(5)
    assert followed == [200]


def test_browser_flow_denied() -> None:
    def browser(url: str) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        back = (
            params["redirect_uri"]
            + "/?"
            + urlencode({"error": "access_denied", "state": params["state"]})
        )
        threading.Thread(target=lambda: get(back)).start()

    with pytest.raises(SignInFailed, match=r"did not sign me@x\.test in: access_denied"):
        sign_in_with_browser(
            PROVIDER, login="me@x.test", show_url=browser, transport=tokens_for("x"), timeout=10
        )


CODE = DeviceCode("dev-code", "ABCD-EFGH", "https://idp.test/device", expires_in=60, interval=5)


def scripted(*answers: HttpResponse) -> FakeTransport:
    queue = list(answers)
    return FakeTransport(lambda request: queue.pop(0))


def test_device_polling_waits_slows_down_and_succeeds() -> None:
    clock = FakeClock()
    transport = scripted(
        reply(400, error="authorization_pending"),
        reply(400, error="slow_down"),
        reply(400, error="authorization_pending"),
        reply(access_token="AT", refresh_token="RT", expires_in=60),
    )
    tokens = poll_device_token(
        PROVIDER,
        CODE,
        login="me",
        transport=transport,
        clock=clock,
        sleep=clock.sleep,
        token_clock=clock,
    )
    assert tokens.access_token.reveal() == "AT"
    assert clock.slept == [5, 5, 10, 10]  # slow_down adds 5 s to every later wait (RFC 8628 §3.5)
    assert all(r.form["device_code"] == "dev-code" for r in transport.requests)


@pytest.mark.parametrize("error", ["access_denied", "authorization_declined"])
def test_device_polling_stops_when_declined(error: str) -> None:
    clock = FakeClock()
    transport = scripted(reply(400, error="authorization_pending"), reply(400, error=error))
    with pytest.raises(SignInFailed, match="declined"):
        poll_device_token(
            PROVIDER, CODE, login="me", transport=transport, clock=clock, sleep=clock.sleep
        )


def test_device_polling_stops_on_expired_token() -> None:
    clock = FakeClock()
    with pytest.raises(SignInFailed, match="ABCD-EFGH expired"):
        poll_device_token(
            PROVIDER, CODE, login="me", transport=scripted(reply(400, error="expired_token")),
            clock=clock, sleep=clock.sleep,
        )  # fmt: skip


def test_device_polling_gives_up_when_expires_in_runs_out() -> None:
    clock = FakeClock()
    transport = FakeTransport(lambda request: reply(400, error="authorization_pending"))
    with pytest.raises(SignInFailed, match="expired"):
        poll_device_token(
            PROVIDER, CODE, login="me", transport=transport, clock=clock, sleep=clock.sleep
        )
    assert len(transport.requests) == 11  # polls at 5, 10, ... 55 s; at 60 s the code is gone
    assert clock.now - 1_000_000.0 == 60


def test_device_polling_other_error_is_typed() -> None:
    clock = FakeClock()
    with pytest.raises(ProviderError, match="invalid_client") as info:
        poll_device_token(
            PROVIDER, CODE, login="me", transport=scripted(reply(401, error="invalid_client")),
            clock=clock, sleep=clock.sleep,
        )  # fmt: skip
    assert info.value.error == "invalid_client"


def test_device_sign_in_reads_google_verification_url_and_defaults_interval() -> None:
    clock = FakeClock()
    shown: list[DeviceCode] = []
    transport = scripted(
        reply(
            device_code="dc",
            user_code="UC",
            verification_url="https://www.google.com/device",
            expires_in=1800,
        ),
        reply(access_token="AT", refresh_token="RT", expires_in=3599),
    )
    sign_in_with_device(
        PROVIDER,
        login="me",
        show_code=shown.append,
        transport=transport,
        clock=clock,
        sleep=clock.sleep,
    )
    assert shown[0].verification_uri == "https://www.google.com/device"
    assert shown[0].interval == 5
    assert "dc" not in repr(shown[0])
    first = transport.requests[0]
    assert first.url == "https://idp.test/device"
    assert dict(first.form) == {"client_id": "client", "scope": "mail offline_access"}


def test_device_sign_in_without_endpoint() -> None:
    bare = OAuthProvider("custom", "c", "https://a", "https://t", ("s",))
    with pytest.raises(SignInFailed, match="no device authorization endpoint"):
        sign_in_with_device(bare, login="me", show_code=print, transport=scripted())
