"""How many clients the proxy takes, sized from the open-file limit (open_files.py).

The proxy runs with a small open-file limit set before it starts (soft 150, hard 200), so the
test stays small: it raises the soft limit to 200 itself and takes (200 - RESERVE) // 2 clients;
the next one is refused with a BYE, and the clients it took still work. A configured
``max_connections`` above that is lowered, and the log says why.
"""

from __future__ import annotations

import socket
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from commsproxy.proxy.imap.open_files import PER_CONNECTION, RESERVE
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess, proxy_args

SOFT, HARD = 150, 200
TAKEN = (HARD - RESERVE) // PER_CONNECTION

# The proxy as ``python -m commsproxy run``, with the open-file limit lowered first.
_LIMITED = (
    "import resource, runpy, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({SOFT}, {HARD})); "
    "sys.argv = ['commsproxy', *sys.argv[1:]]; "
    "runpy.run_module('commsproxy', run_name='__main__')"
)


def limited_proxy(args: list[str]) -> ProxyProcess:
    process = ProxyProcess(args)
    process.args = [sys.executable, "-c", _LIMITED, "run", *args]
    return process.start()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text("[proxy]\nmax_connections = 1000\n")
    return path


def connect(port: int) -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    return sock, sock.makefile("rb").readline()


def test_clients_up_to_the_open_file_limit_then_a_bye(dovecot: Dovecot) -> None:
    proxy = limited_proxy(proxy_args(dovecot))
    try:
        assert proxy.wait_for_log(
            rf"taking up to {TAKEN} client connections \(open-file limit {HARD}\)"
        )
        with ExitStack() as stack:
            for _ in range(TAKEN):
                sock, greeting = connect(proxy.imap_port)
                stack.callback(sock.close)
                assert greeting.startswith(b"* OK"), greeting
            sock, refused = connect(proxy.imap_port)
            stack.callback(sock.close)
            assert refused.startswith(b"* BYE [UNAVAILABLE]"), refused
            assert b"too many connections" in refused
            assert proxy.wait_for_log(f"refusing a client: {TAKEN} connections open")
        # Those clients gone (their sessions end as the proxy reads their close), one is taken.
        for _ in range(100):
            sock, greeting = connect(proxy.imap_port)
            sock.close()
            if greeting.startswith(b"* OK"):
                break
            time.sleep(0.05)
        assert greeting.startswith(b"* OK"), greeting
    finally:
        proxy.stop()


def test_a_configured_limit_above_the_open_files_is_lowered(dovecot: Dovecot, config: Path) -> None:
    proxy = limited_proxy(["--config", str(config), *proxy_args(dovecot)])
    try:
        assert proxy.wait_for_log(
            rf"max_connections = 1000 needs more open files .*limit {HARD}.* taking {TAKEN}"
        ), proxy.log_text()
        assert proxy.wait_for_log(rf"taking up to {TAKEN} client connections")
    finally:
        proxy.stop()
