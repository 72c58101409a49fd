"""benchmarks/relay_work.py counts the relay's Python work per round trip, the same each time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "relay_work.py"
sys.path.insert(0, str(_PATH.parent))  # it imports benchlib, as the benchmarks do
_SPEC = importlib.util.spec_from_file_location("relay_work", _PATH)
assert _SPEC is not None
assert _SPEC.loader is not None
relay_work = importlib.util.module_from_spec(_SPEC)
sys.modules["relay_work"] = relay_work  # its dataclasses and annotations look it up
_SPEC.loader.exec_module(relay_work)


def test_the_count_of_the_relays_work_is_the_same_every_time() -> None:
    first, again = relay_work.measure(20), relay_work.measure(20)
    assert set(first) == {f"{p} {op}" for p in ("relay", "gate") for op in relay_work.OPS}
    for key, row in first.items():
        assert row["opcodes"] > 0
        assert (row["calls"], row["opcodes"]) == (again[key]["calls"], again[key]["opcodes"])
    # The gate's work is the relay's and more: it asks triage and holds a SELECT's answer.
    for op in relay_work.OPS:
        assert first[f"gate {op}"]["opcodes"] > first[f"relay {op}"]["opcodes"]


def test_each_round_trip_answers_the_client_once() -> None:
    for gate in (False, True):
        session = relay_work._session(gate)
        client = session._client.writer.transport
        before = client.writes
        trip = relay_work._trip(session)
        for command, reply in relay_work._round_trips("SELECT", 5):
            trip(command, reply)
        assert client.writes - before == 5  # the held answer goes out in one write, each time
        assert session.state.uidnext == relay_work.LAST_UID + 1
