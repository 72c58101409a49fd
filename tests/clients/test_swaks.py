"""swaks through the proxy's SMTP side: AUTH, relay to another user, and upstream refusals.

The proxy relays each SMTP step live, so a refusal must reach the client with the upstream's
own code and text. The refusal tests therefore run the same swaks command straight against
Dovecot's submission port too and compare the two answers.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.clients.helpers import (
    assert_password_not_logged,
    client_env,
    output_of,
    require_program,
    run_client,
    token,
    upstream_messages,
    wait_for_count,
    wait_until,
)
from tests.testbed.dovecot import Dovecot, DovecotError
from tests.testbed.proxy import ProxyProcess

pytestmark = pytest.mark.clients

# swaks marks a reply it did not expect with "*": "<** 535 ..." in clear, "<~* 535 ..." in TLS.
_ERROR_REPLY = re.compile(r"^<[-~*]\* +(\d{3}[ -].*)$", re.MULTILINE)
# swaks exit codes (swaks --help, EXIT CODES).
_EXIT_AUTH_FAILED = 28
_EXIT_NO_RCPT_ACCEPTED = 24


def _swaks(
    tmp_path: Path,
    port: int,
    user: str,
    password: str,
    *,
    to: str,
    extra: tuple[str, ...] = (),
    expect_success: bool = True,
) -> subprocess.CompletedProcess[str]:
    swaks = require_program("swaks")
    args = [
        swaks,
        "--server", f"127.0.0.1:{port}",
        "--auth-user", user,
        "--auth-password", password,
        "--from", f"{user}@localhost",
        "--to", to,
        "--timeout", "20",
        *extra,
    ]  # fmt: skip
    return run_client(args, env=client_env(tmp_path), expect_success=expect_success)


def _error_replies(result: subprocess.CompletedProcess[str]) -> list[str]:
    return _ERROR_REPLY.findall(result.stdout + result.stderr)


@pytest.mark.parametrize(
    ("tls", "mechanism"),
    [
        pytest.param(False, "PLAIN", id="plain-PLAIN"),
        pytest.param(False, "LOGIN", id="plain-LOGIN"),
        pytest.param(True, "PLAIN", id="starttls-PLAIN"),
    ],
)
def test_swaks_sends_to_another_user(
    tls: bool,
    mechanism: str,
    dovecot: Dovecot,
    proxy: ProxyProcess,
    imap_user: tuple[str, str],
    tmp_path: Path,
) -> None:
    user, password = imap_user
    recipient, recipient_password = dovecot.new_user()
    subject = f"{token()} sent with swaks"
    extra = ["--auth", mechanism, "--header", f"Subject: {subject}", "--body", "hello"]
    if tls:
        # STARTTLS, verifying the proxy's certificate against the test CA only.
        extra += ["--tls", "--tls-verify", "--tls-ca-path", str(dovecot.ca_file)]
    result = _swaks(
        tmp_path, proxy.smtp_port, user, password, to=f"{recipient}@localhost", extra=tuple(extra)
    )
    assert ("=== TLS started" in result.stdout) == tls, output_of(result)

    wait_for_count(dovecot, recipient, 1)
    received = upstream_messages(dovecot, recipient, recipient_password)
    assert [message.subject for message in received] == [subject]
    assert_password_not_logged(proxy, user, password)


def test_swaks_wrong_password_gets_upstream_535(
    dovecot: Dovecot, proxy: ProxyProcess, imap_user: tuple[str, str], tmp_path: Path
) -> None:
    user, password = imap_user
    wrong = f"not-{password}"
    replies = {}
    for name, port in (("proxy", proxy.smtp_port), ("dovecot", dovecot.submission_port)):
        result = _swaks(
            tmp_path,
            port,
            user,
            wrong,
            to=f"{user}@localhost",
            extra=("--auth", "PLAIN", "--tls"),
            expect_success=False,
        )
        assert result.returncode == _EXIT_AUTH_FAILED, f"via {name}:\n{output_of(result)}"
        replies[name] = _error_replies(result)
    assert replies["proxy"], "swaks saw no error reply from the proxy"
    assert replies["proxy"][0].startswith("535 "), replies
    assert replies["proxy"] == replies["dovecot"], "the proxy did not relay the upstream's answer"
    assert dovecot.message_count(user) == 0
    assert_password_not_logged(proxy, user, wrong)


def test_swaks_null_sender_is_relayed_and_received(
    dovecot: Dovecot, proxy: ProxyProcess, imap_user: tuple[str, str], tmp_path: Path
) -> None:
    """MAIL FROM:<> (bounces, delivery reports, read receipts) goes through like any sender."""
    user, password = imap_user
    recipient, recipient_password = dovecot.new_user()
    subject = f"{token()} a delivery report"
    swaks = require_program("swaks")
    result = run_client(
        [
            swaks,
            "--server", f"127.0.0.1:{proxy.smtp_port}",
            "--auth", "PLAIN", "--auth-user", user, "--auth-password", password,
            "--from", "<>",
            "--to", f"{recipient}@localhost",
            "--header", f"Subject: {subject}", "--body", "delivered",
            "--timeout", "20",
        ],
        env=client_env(tmp_path),
    )  # fmt: skip
    assert "MAIL FROM:<>" in result.stdout, output_of(result)
    wait_for_count(dovecot, recipient, 1)
    received = upstream_messages(dovecot, recipient, recipient_password)
    assert [message.subject for message in received] == [subject]


def test_swaks_refused_recipient_gets_upstream_error(
    dovecot: Dovecot, proxy: ProxyProcess, imap_user: tuple[str, str], tmp_path: Path
) -> None:
    # Dovecot's submission refuses an address without a domain; the proxy's own parser
    # (aiosmtpd) lets it through, so the refusal really comes from upstream.
    user, password = imap_user
    replies = {}
    for name, port in (("proxy", proxy.smtp_port), ("dovecot", dovecot.submission_port)):
        result = _swaks(
            tmp_path,
            port,
            user,
            password,
            to="nodomain",
            extra=("--auth", "PLAIN"),
            expect_success=False,
        )
        assert result.returncode == _EXIT_NO_RCPT_ACCEPTED, f"via {name}:\n{output_of(result)}"
        replies[name] = _error_replies(result)
    assert replies["proxy"], "swaks saw no error reply from the proxy"
    assert replies["proxy"][0].startswith("5"), replies
    assert replies["proxy"] == replies["dovecot"], "the proxy did not relay the upstream's answer"
    assert_password_not_logged(proxy, user, password)


def test_swaks_one_refused_recipient_does_not_stop_the_others(
    dovecot: Dovecot, proxy: ProxyProcess, imap_user: tuple[str, str], tmp_path: Path
) -> None:
    user, password = imap_user
    recipient, recipient_password = dovecot.new_user()
    subject = f"{token()} to a good and a bad address"
    result = _swaks(
        tmp_path,
        proxy.smtp_port,
        user,
        password,
        to=f"{recipient}@localhost,nodomain",
        extra=("--auth", "PLAIN", "--header", f"Subject: {subject}"),
    )
    refusals = _error_replies(result)
    assert len(refusals) == 1, output_of(result)
    assert refusals[0].startswith("5"), refusals
    assert not refusals[0].startswith("250"), refusals
    wait_for_count(dovecot, recipient, 1)
    received = upstream_messages(dovecot, recipient, recipient_password)
    assert [message.subject for message in received] == [subject]
    assert_password_not_logged(proxy, user, password)


# -- regressions: both failed through the proxy until 471cc6f -------------------------------


def _login_session_ended(dovecot: Dovecot, user: str) -> bool:
    """Dovecot logs ``Disconnected`` when a submission login session ends, whatever the end."""
    pattern = re.compile(rf"submission-login: Info: Disconnected: .*user=<{re.escape(user)}>")
    return bool(pattern.search(dovecot.log_text()))


def _refused_passwords(dovecot: Dovecot, user: str) -> int:
    """How many times Dovecot's auth process refused ``user``'s password, all told."""
    mismatch = re.compile(rf"passwd-file\({re.escape(user)}[,)].*: Password mismatch")
    sentinel_logged = _auth_sentinel(dovecot)
    wait_until(sentinel_logged, what="the auth process to log the sentinel")
    return len(mismatch.findall(dovecot.log_text()))


def _auth_sentinel(dovecot: Dovecot) -> Callable[[], bool]:
    """Make the auth process log one more refusal, and say when that line is in the log.

    Dovecot has a single auth process (process_limit = 1) and its log lines keep their order,
    so once the sentinel's line is there, every refusal that came before it is logged too.
    """
    sentinel, _ = dovecot.new_user()
    with pytest.raises(DovecotError):
        dovecot.doveadm("auth", "test", sentinel, "wrong-on-purpose")
    line = re.compile(rf"passwd-file\({re.escape(sentinel)}\): Password mismatch")
    return lambda: bool(line.search(dovecot.log_text()))


def _wrong_password(dovecot: Dovecot, port: int, tmp_path: Path) -> str:
    """A fresh user's AUTH PLAIN with a wrong password on ``port``; swaks must fail at AUTH."""
    user, password = dovecot.new_user()
    result = _swaks(
        tmp_path,
        port,
        user,
        f"not-{password}",
        to=f"{user}@localhost",
        extra=("--auth", "PLAIN"),
        expect_success=False,
    )
    assert result.returncode == _EXIT_AUTH_FAILED, output_of(result)
    return user


def test_swaks_wrong_password_leaves_no_upstream_connection_open(
    dovecot: Dovecot, proxy: ProxyProcess, tmp_path: Path
) -> None:
    """A refused AUTH must close the upstream connection the proxy opened to try it.

    The bug this guards against: RelayHandler._connect() logged in before it stored the link,
    so on a 535 the link was neither stored nor closed. Every wrong password left one upstream
    SMTP connection (and one Dovecot submission-login process) open until the upstream's own
    idle timeout; ``ss -tnp`` showed them held by the proxy.
    """
    # Baseline, straight to Dovecot: the login session ends as soon as swaks quits.
    direct_user = _wrong_password(dovecot, dovecot.submission_port, tmp_path)
    wait_until(
        lambda: _login_session_ended(dovecot, direct_user),
        what=f"Dovecot to log the end of {direct_user}'s direct login session",
    )

    user = _wrong_password(dovecot, proxy.smtp_port, tmp_path)
    wait_until(
        lambda: _login_session_ended(dovecot, user),
        what=(
            f"Dovecot to log the end of the proxy's upstream login session for {user}: "
            "the proxy kept the connection of a refused AUTH open"
        ),
        timeout=5,
    )


def test_swaks_wrong_password_costs_one_upstream_attempt(
    dovecot: Dovecot, proxy: ProxyProcess, tmp_path: Path
) -> None:
    """One refused AUTH from the client must be one refused attempt upstream, not two.

    The bug this guards against: the proxy checked credentials with aiosmtplib's
    ``SMTP.login()``, which after a 535 tries the next mechanism the server offers (PLAIN, then
    LOGIN). Every wrong password counted twice against upstream lockout limits (fail2ban,
    Exchange/AD lockout thresholds), and the client waited out the failure delay twice.
    """
    direct_user = _wrong_password(dovecot, dovecot.submission_port, tmp_path)
    assert _refused_passwords(dovecot, direct_user) == 1, "baseline: swaks tries once"

    user = _wrong_password(dovecot, proxy.smtp_port, tmp_path)
    attempts = _refused_passwords(dovecot, user)
    assert attempts == 1, f"one wrong password through the proxy cost {attempts} attempts upstream"
