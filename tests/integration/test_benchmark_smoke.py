"""The mailbox-size benchmark still runs: a tiny ``--smoke`` run against its own Dovecot.

Timing is not judged here (the machine running the tests may be busy); what is checked is that
every measurement happened and saw what it should: all four paths sampled, the backlog all
triaged, the idle connections all logged in, and a verdict for every target.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PATHS = {"direct", "raw relay", "commsproxy", "commsproxy+triage"}


def test_mailbox_size_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "mailbox_size.json"
    run = subprocess.run(
        [sys.executable, "benchmarks/mailbox_size.py", "--smoke", "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())

    (size,) = report["sizes"]
    result = report["sizes"][size]
    assert set(result["paths"]) == PATHS
    for name, row in result["paths"].items():
        for sample in row["samples"]:
            for what in ("noop_ms", "select_ms", "idle_ms", "flags_ms"):
                assert sample[what], (name, what)
                assert all(ms > 0 for ms in sample[what]), (name, what)
            assert sample["fetch_bytes"] > result["message_bytes"], name
    assert set(result["idle_cpu"]) == {"triage off", "triage on"}
    assert result["idle_cpu"]["triage on"]["seconds"] > 0
    assert 20 < result["rss_idle_mb"] < 2000

    backlog = result["backlog"]
    assert backlog["held"] + backlog["kept_in_inbox"] == backlog["messages"] == 50
    assert backlog["held"] > 0  # newsletters and notes from unknown senders are held
    assert result["backlog_server"]["messages"] == 50
    assert result["backlog_server_stepwise"]["messages"] == 50
    # The server told an IDLEing client of the new mail, after the burst began.
    assert backlog["announced_seconds"] is not None
    assert 0 < backlog["announced_seconds"] < backlog["settled_seconds"]
    # The proxy's log says when its last hold was answered: before the probe saw it settled.
    assert 0 < backlog["last_hold_logged_seconds"] <= backlog["settled_seconds"] + 0.05

    for name in ("commsproxy+triage", "raw relay"):
        assert report["connections"][name]["connections_logged_in"] == 20, name

    names = " | ".join(t["target"] for t in report["targets"])
    for word in ("NOOP", "SELECT", "IDLE", "bulk fetch", "FLAGS", "idle CPU", "RSS", "backlog"):
        assert word in names, word
    assert "idle connections" in names
    assert "PASS" in run.stdout or "MISS" in run.stdout
