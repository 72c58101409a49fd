"""Sign-in in a browser: authorization code with PKCE and a loopback redirect (RFC 8252).

``sign_in_with_browser`` binds the listener first (its port is part of the redirect URI), builds
the authorization URL, hands it to ``show_url`` (the CLI opens the browser and prints it), waits
for the redirect and redeems the code. A test plays the browser by following the URL itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .errors import SignInFailed
from .http import Transport, urllib_transport
from .loopback import LoopbackListener
from .pkce import new_pkce, new_state
from .providers import OAuthProvider
from .requests import authorization_url, code_request
from .tokens import TokenSet, token_set_from

__all__ = ["sign_in_with_browser"]


def sign_in_with_browser(
    provider: OAuthProvider,
    *,
    login: str,
    show_url: Callable[[str], None],
    login_hint: str | None = None,
    transport: Transport = urllib_transport,
    timeout: float = 300.0,
    clock: Callable[[], float] = time.time,
) -> TokenSet:
    """Sign ``login`` in through the browser; the token set holds the refresh token to keep."""
    pkce, state = new_pkce(), new_state()
    with LoopbackListener(state) as listener:
        url = authorization_url(
            provider,
            redirect_uri=listener.redirect_uri,
            state=state,
            pkce=pkce,
            login_hint=login_hint,
        )
        show_url(url)
        redirect = listener.wait(timeout)
    if redirect.error:
        detail = (
            f" ({redirect.error_description.splitlines()[0][:200]})"
            if (redirect.error_description)
            else ""
        )
        raise SignInFailed(f"{provider.title} did not sign {login} in: {redirect.error}{detail}")
    assert redirect.code is not None  # the listener returns a code or an error
    request = code_request(
        provider, code=redirect.code, redirect_uri=listener.redirect_uri, pkce=pkce
    )
    return token_set_from(transport(request), login=login, provider=provider.title, clock=clock)
