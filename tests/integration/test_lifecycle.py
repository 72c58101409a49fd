"""Starting, stopping and failing: what the user sees when things go wrong around the proxy."""

from __future__ import annotations

import base64
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.integration.helpers import connect, login
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args

User = tuple[str, str]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _greeting(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        return sock.makefile("rb").readline()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_says_bye_to_clients_and_exits(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot, imap_user: User, signum: int
) -> None:
    proxy = make_proxy()
    conn = login(proxy, dovecot, imap_user)
    conn.select("INBOX")
    conn.send(b"i1 IDLE\r\n")
    assert conn.readline().startswith(b"+")
    proxy.signal(signum)
    assert proxy.wait() == 0
    rest = conn.sock.recv(4096)
    conn.shutdown()
    assert rest.startswith(b"* BYE commsproxy is shutting down")
    assert "commsproxy stopped" in proxy.log_text()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.imap_port), timeout=5)


def test_unreachable_upstream_gets_bye_with_reason(
    make_proxy: Callable[..., ProxyProcess],
) -> None:
    port = _free_port()
    proxy = make_proxy(["--upstream", f"imap://127.0.0.1:{port}", "--listen", "127.0.0.1:0"])
    greeting = _greeting(proxy.imap_port)
    assert greeting.startswith(b"* BYE [UNAVAILABLE] commsproxy: upstream 127.0.0.1:")
    assert b"unreachable: Connect" in greeting
    assert proxy.wait_for_log(rf"upstream 127\.0\.0\.1:{port} unreachable")


def test_untrusted_upstream_certificate_gets_bye(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot
) -> None:
    # No --cafile: the test CA is not among the system CAs, so verification must fail.
    args = ["--upstream", f"imaps://localhost:{dovecot.imaps_port}", "--listen", "127.0.0.1:0"]
    proxy = make_proxy(args)
    greeting = _greeting(proxy.imap_port)
    assert greeting.startswith(b"* BYE [UNAVAILABLE]")
    assert b"TLS certificate not trusted" in greeting
    assert proxy.wait_for_log(r"TLS certificate not trusted")


def test_starttls_upstream(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot, imap_user: User
) -> None:
    args = [
        "--upstream", f"imap+starttls://localhost:{dovecot.imap_port}",
        "--cafile", str(dovecot.ca_file),
        "--listen", "127.0.0.1:0",
    ]  # fmt: skip
    proxy = make_proxy(args)
    conn = login(proxy, dovecot, imap_user)
    assert "STARTTLS" not in conn.capabilities  # the upstream's offer is not the client's
    assert conn.select("INBOX")[0] == "OK"
    conn.logout()
    assert proxy.wait_for_log(r"upstream localhost:\d+ connected \(STARTTLS\)")


def test_passwords_never_logged_even_verbose(
    make_proxy: Callable[..., ProxyProcess], dovecot: Dovecot, imap_user: User
) -> None:
    proxy = make_proxy([*proxy_args(dovecot), "--verbose"])
    login(proxy, dovecot, imap_user).logout()
    sasl = f"\0{imap_user[0]}\0{imap_user[1]}".encode()
    conn = connect(proxy, dovecot)
    conn.authenticate("PLAIN", lambda _: sasl)
    conn.logout()
    proxy.stop()
    text = proxy.log_text()
    assert " LOGIN" in text  # command names are logged with --verbose ...
    assert " AUTHENTICATE" in text
    assert imap_user[1] not in text  # ... their arguments never are
    assert base64.b64encode(sasl).decode() not in text


def test_config_error_names_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[proxy]\nimap = "127.0.0.1:1143"\nsmpt = "127.0.0.1:1587"\n')
    result = subprocess.run(
        [sys.executable, "-m", "commsproxy", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"{config}:3: [proxy] smpt: unknown key" in result.stderr


def test_plain_upstream_to_remote_host_refused() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "commsproxy", "run", "--upstream", "imap://mail.example.com"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--upstream" in result.stderr
    assert "--allow-insecure" in result.stderr
