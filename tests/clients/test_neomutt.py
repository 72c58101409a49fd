"""neomutt in tmux through the proxy: read the index, open a message, see new mail, delete.

neomutt is full-screen, so it runs in a detached tmux session on a private server and the test
reads the screen with ``capture-pane``. New mail reaches it either by IDLE or by its periodic
NOOP/STATUS check, the two paths the proxy's gate has to get right.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.clients.helpers import (
    Security,
    TmuxPane,
    assert_imap_sessions_secured,
    assert_password_not_logged,
    client_env,
    deliver,
    proxy_imap_port,
    require_program,
    token,
    upstream_messages,
    wait_for_count,
    write_muttrc,
)
from tests.testbed.dovecot import Dovecot
from tests.testbed.proxy import ProxyProcess

pytestmark = pytest.mark.clients

# Screens that mean neomutt is stuck or failed; seeing one fails the test at once.
_TROUBLE = (
    r"\(r\)eject",  # certificate not trusted
    r"Login failed",
    r"Password for ",  # it did not take imap_pass
    r"Could not connect",
    r"SSL failed",
)
# The help line of the index (the pager's starts with "i:Exit").
_INDEX = r"q:Quit\s+d:Del"


@pytest.mark.parametrize(
    ("security", "idle"),
    [
        pytest.param("plain", True, id="plain-idle"),
        pytest.param("plain", False, id="plain-polling"),
        pytest.param("starttls", True, id="starttls-idle"),
        pytest.param("imaps", True, id="imaps-idle"),
    ],
)
def test_neomutt_reads_mail(
    security: Security,
    idle: bool,
    dovecot: Dovecot,
    proxy: ProxyProcess,
    imap_user: tuple[str, str],
    tmp_path: Path,
) -> None:
    neomutt = require_program("neomutt")
    user, password = imap_user
    word = token()
    first, first_body = f"{word} first message", f"the body of {word}"
    deliver(dovecot, user, first, first_body)

    # A copy: neomutt may add to its certificate file, and the CA must stay untouched.
    certificates = tmp_path / "certificates.pem"
    shutil.copyfile(dovecot.ca_file, certificates)
    muttrc = write_muttrc(
        tmp_path / "muttrc",
        port=proxy_imap_port(proxy, security),
        user=user,
        password=password,
        security=security,
        certificate_file=certificates,
        idle=idle,
    )
    command = [neomutt, "-n", "-F", str(muttrc)]
    with TmuxPane(tmp_path, command, env=client_env(tmp_path)) as pane:
        pane.wait_for(re.escape(first), timeout=15, fail_on=_TROUBLE)

        pane.send_keys("Enter")  # open the message in the pager
        pane.wait_for(re.escape(first_body), fail_on=_TROUBLE)
        pane.send_keys("q")  # back to the index
        pane.wait_for(_INDEX, fail_on=_TROUBLE)

        # Mail that arrives while neomutt is open shows up without any key press.
        second = f"{word} second message"
        deliver(dovecot, user, second)
        pane.wait_for(re.escape(second), timeout=15, fail_on=_TROUBLE)

        # The cursor is still on the first message: delete it and sync the mailbox.
        pane.send_keys("d", "$")
        wait_for_count(dovecot, user, 1)
        remaining = upstream_messages(dovecot, user, password)
        assert [message.subject for message in remaining] == [second]

        pane.send_keys("q")
        status = pane.wait_for_exit()
        assert status == 0, f"neomutt exited {status}:\n{pane.screen()}"

    assert_imap_sessions_secured(proxy, user, security)
    assert_password_not_logged(proxy, user, password)
