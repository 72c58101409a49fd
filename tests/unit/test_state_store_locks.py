"""A second StateStore in a process (the local page and the actions inside ``run``) must not
strip the first of its SQLite locks: otherwise another process takes the file as unused,
checkpoints and deletes the WAL the first still writes to, and never sees those writes."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from commsproxy.triage.state_store import StateStore

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)

_PENDING = """
import sys
from pathlib import Path
from commsproxy.triage.state_store import StateStore
with StateStore.open(Path(sys.argv[1])) as store:
    print(len(store.pending_deliveries()))
"""


def pending_elsewhere(state: Path) -> int:
    """Pending deliveries as another process sees them (it opens and closes the file)."""
    out = subprocess.run(
        [sys.executable, "-c", _PENDING, str(state)], capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_a_second_store_in_the_process_keeps_the_first_ones_writes_visible(
    tmp_path: Path,
) -> None:
    with StateStore.open(tmp_path) as run:  # run's own connection
        first = run.request_delivery("me", "a@x", T0)
        with StateStore.open(tmp_path) as page:  # the page's, in the same process
            assert [r.id for r in page.pending_deliveries()] == [first]
        assert pending_elsewhere(tmp_path) == 1  # another process opens and closes the file
        run.complete_delivery(first, "delivered", "done", T0)
        run.request_delivery("me", "b@x", T0)
        assert pending_elsewhere(tmp_path) == 1  # it sees run's writes as they are made
        with StateStore.open(tmp_path) as again:
            assert len(again.pending_deliveries()) == 1
    assert pending_elsewhere(tmp_path) == 1
