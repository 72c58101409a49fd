"""``release --now`` served by a running service whose link is cut in the first batch's release.

Found by the random cuts of test_fault_random_cuts.py and pinned here at the exact point: the
fault hop drops the first ``APPEND`` (the digest of the first batch's release), so that
release fails with the link lost. The engine reconnects and finishes the interrupted release
(the store shows it started), but the service marks the whole request done when one batch's
release raised, so the batches after it were never released: their mail stayed held until its
schedule, though ``release --now`` asked for everything (and the command exited 0 saying
"released 0 messages" for each batch). Now the request stays queued until every batch it names
is released (triage/hub.py), the command says so once it is, and the census finds nothing held.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from commsproxy.triage.state_store import StateStore
from tests.integration.test_fault_random_cuts import held, hop_thread, on_loop
from tests.integration.test_triage import newsletter, thread_reply
from tests.integration.test_triage_health import Login
from tests.testbed.census import Census, assert_sound
from tests.testbed.dovecot import Dovecot
from tests.testbed.triage import wait_until

HOLDS = ("Later", "Later/Bulk")
ROOT = Path(__file__).parents[2]


def release_command(login: Login) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commsproxy", "release", "--now", "--config", str(login.config)],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip


def test_a_release_request_cut_short_is_carried_out_in_full(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    with hop_thread(dovecot.imap_port) as (hop, loop):
        login = Login(dovecot, tmp_path, upstream=f"imap://127.0.0.1:{hop.port}")
        user = login.user
        delivered = []
        for i in range(4):
            mid = f"<request-cut-{i}@test.example>"
            dovecot.deliver(user, newsletter(mid) if i % 2 else thread_reply(mid))
            delivered.append(mid)
        proxy = login.start()
        try:
            assert wait_until(lambda: held(dovecot, user) == 4, 30), proxy.log_text()
            on_loop(loop, hop.arm, rb"^\S+ APPEND ", "before", 1)
            done = release_command(login)
            assert hop.cuts == 1, proxy.log_text()

            def settled() -> bool:
                with StateStore.open(login.state) as store:
                    return not store.pending_release_requests() and not (
                        store.unfinished_releases(user)
                    )

            assert wait_until(settled, 30), proxy.log_text()
            said = f"release --now exited {done.returncode}: {done.stdout}{done.stderr}"
            assert done.returncode == 0, said
            assert held(dovecot, user) == 0, proxy.log_text()
        finally:
            proxy.stop()
    assert_sound(
        Census.take(dovecot, user),
        delivered,
        holds=HOLDS,
        released=HOLDS,
        store=login.state,
        login=user,
    )
