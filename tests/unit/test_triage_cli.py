"""`commsproxy status`, `release` and `explain` against a state file the test fills itself."""

from __future__ import annotations

import json
import os
import sys
import threading
import types
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from commsproxy.cli import main
from commsproxy.config import Config, load_config
from commsproxy.triage import release_now as release_now_module
from commsproxy.triage import status_report
from commsproxy.triage.health import Health, State
from commsproxy.triage.runlock import RunLock
from commsproxy.triage.state_store import (
    FILENAME,
    Correction,
    Decision,
    HistoryRecord,
    StateStore,
)

LOGIN = "me@example.com"
RELEASE_MODULE = "commsproxy.triage.release"

CONFIG = """
[proxy]
state_dir = "{state}"

[[login]]
upstream_imap = "imap://127.0.0.1:1"
allow_insecure = true
username = "{login}"

[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal"]
release = ["08:30", "16:30"]
days = "mon-fri"
timezone = "Europe/Amsterdam"

[[batch]]
name = "bulk"
mailbox = "Later/Bulk"
labels = ["bulk"]
release = ["16:30"]
days = "daily"
timezone = "UTC"
"""


@pytest.fixture(autouse=True)
def private_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read the developer's own trained model or config."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("COMMSPROXY_CONFIG", raising=False)


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def config_file(tmp_path: Path, state: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(state=state, login=LOGIN), encoding="utf-8")
    return path


def decision(
    message_id: str | None,
    label: str,
    *,
    uid: int,
    ago: timedelta,
    batch: str | None = None,
    held: bool = False,
    score: float | None = None,
) -> Decision:
    return Decision(
        login=LOGIN,
        mailbox="INBOX",
        uidvalidity=7,
        uid=uid,
        message_id=message_id,
        label=label,
        score=score,
        reason=f"{label} because of test {uid}",
        batch=batch,
        held=held,
        sender=f"sender{uid}@example.org",
        subject=f"Subject {uid}",
        decided_at=datetime.now(UTC) - ago,
    )


@pytest.fixture
def filled(state: Path) -> Path:
    """A state file as a few hours of ``commsproxy run`` would leave it."""
    now = datetime.now(UTC)
    with StateStore.open(state) as store:
        store.record_decisions(
            [
                decision("boss-1@example.com", "urgent", uid=1, ago=timedelta(hours=1), score=0.97),
                decision(
                    "note-2@example.com",
                    "normal",
                    uid=2,
                    ago=timedelta(hours=2),
                    batch="later",
                    held=True,
                    score=0.2,
                ),
                decision(
                    "news-3@example.com",
                    "bulk",
                    uid=3,
                    ago=timedelta(hours=3),
                    batch="bulk",
                    held=True,
                ),
                decision("old-4@example.com", "bulk", uid=4, ago=timedelta(days=2), batch="bulk"),
            ]
        )
        release_id = store.start_release(LOGIN, "later", now - timedelta(hours=5), now)
        store.finish_release(release_id, 4, now)
        store.record_correction(
            Correction(
                login=LOGIN,
                message_id="note-2@example.com",
                kind="rescue",
                label="urgent",
                previous="normal",
                sender="sender2@example.org",
                subject="Subject 2",
                at=now,
            )
        )
    return state


def invoke(config_file: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--config", str(config_file)])


def pending(state: Path) -> list[int]:
    with StateStore.open(state) as store:
        return [request.id for request in store.pending_release_requests()]


# --- status -------------------------------------------------------------------------------------


def test_status_before_any_run(config_file: Path, state: Path) -> None:
    result = invoke(config_file, "status")
    assert result.exit_code == 0, result.output
    assert "not running" in result.output
    assert "no triage has run yet" in result.output
    assert f"{LOGIN}:" in result.output
    assert "later  Later (normal): next " in result.output
    assert "never released" in result.output
    assert "last 24 h: 0 urgent, 0 normal, 0 bulk" in result.output
    assert not state.exists()


def test_status_json_before_any_run(config_file: Path, state: Path) -> None:
    result = invoke(config_file, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["running"] is False
    assert data["pid"] is None
    assert data["state_exists"] is False
    assert data["model"].startswith("default: the bundled model")
    [login] = data["logins"]
    assert login["login"] == LOGIN
    assert login["decisions_24h"] == {"urgent": 0, "normal": 0, "bulk": 0}
    assert login["recent"] == []
    assert login["corrections"] == 0
    later, bulk = login["batches"]
    assert (later["name"], later["mailbox"], later["labels"]) == ("later", "Later", ["normal"])
    assert later["last_release"] is None
    next_later = datetime.fromisoformat(later["next_release"])
    assert next_later > datetime.now(UTC)
    assert next_later.strftime("%H:%M") in ("08:30", "16:30")  # in the batch's own zone
    assert datetime.fromisoformat(bulk["next_release"]).strftime("%H:%M") == "16:30"
    assert not state.exists()


def test_status_with_history(config_file: Path, filled: Path) -> None:
    result = invoke(config_file, "status")
    assert result.exit_code == 0, result.output
    assert f"state: {filled / FILENAME}" in result.output
    assert "last 24 h: 1 urgent, 1 normal, 1 bulk" in result.output
    assert "4 moved" in result.output
    assert "held in later" in result.output
    assert "sender1@example.org: 'Subject 1' (urgent because of test 1)" in result.output
    assert "corrections recorded: 1" in result.output


def test_status_json_with_history(config_file: Path, filled: Path) -> None:
    result = invoke(config_file, "status", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["state_exists"] is True
    [login] = data["logins"]
    assert login["decisions_24h"] == {"urgent": 1, "normal": 1, "bulk": 1}
    assert [entry["message_id"] for entry in login["recent"]] == [
        "boss-1@example.com",
        "note-2@example.com",
        "news-3@example.com",
        "old-4@example.com",
    ]
    first = login["recent"][0]
    assert first["label"] == "urgent"
    assert first["held"] is False
    assert first["score"] == pytest.approx(0.97)
    datetime.fromisoformat(first["at"])
    later = login["batches"][0]
    assert later["last_release"]["moved"] == 4
    assert login["batches"][1]["last_release"] is None
    assert login["corrections"] == 1


def test_status_names_the_running_proxy_and_the_model(
    config_file: Path, state: Path, tmp_path: Path
) -> None:
    model = tmp_path / "mine.joblib"
    text = config_file.read_text() + f'\n[triage]\nmodel = "{model}"\n'
    config_file.write_text(text)
    with RunLock(state):
        result = invoke(config_file, "status", "--json")
    data = json.loads(result.output)
    assert data["running"] is True
    assert isinstance(data["pid"], int)
    assert data["pid"] > 0
    assert data["model"] == str(model)


def test_status_shows_a_failing_login_and_exits_1(config_file: Path, filled: Path) -> None:
    now = datetime.now(UTC)
    failing = Health(
        LOGIN,
        State.SIGNIN_FAILED,
        now - timedelta(minutes=5),
        reason="upstream refused the login for me@example.com: NO [AUTHENTICATIONFAILED]",
        todo="check the password",
        failing_since=now - timedelta(minutes=20),
        last_decision=(now - timedelta(hours=1), "bulk, held in bulk"),
        next_release=("later", now - timedelta(minutes=3)),
    )
    with RunLock(filled), StateStore.open(filled) as store:
        store.save_health(failing, os.getpid(), now)
        store.plan_notice(LOGIN, "n@commsproxy.localhost", "refused", now)
        store.notice_appended(LOGIN, now)
        text = invoke(config_file, "status")
        as_json = invoke(config_file, "status", "--json")
    assert text.exit_code == 1, text.output
    assert "triage: SIGNING IN FAILED since " in text.output
    assert "AUTHENTICATIONFAILED" in text.output
    assert "    what to do: check the password" in text.output
    assert "    a notice saying so is in INBOX since " in text.output
    assert "last decision " in text.output
    assert "(bulk, held in bulk); next release later " in text.output
    assert "(overdue: released as soon as triage works)" in text.output
    assert "later  Later (normal): next " in text.output  # the rest as before
    assert as_json.exit_code == 1, as_json.output
    health = json.loads(as_json.output)["logins"][0]["health"]
    assert health["state"] == "signing in failed"
    assert health["ok"] is False
    assert datetime.fromisoformat(health["failing_since"]) == failing.failing_since
    assert health["todo"] == "check the password"
    assert health["notice_in_inbox"] is not None
    assert health["next_release"]["batch"] == "later"
    assert health["next_release"]["overdue"] is True
    assert health["last_decision"]["what"] == "bulk, held in bulk"


def test_status_of_a_connected_login_and_of_one_reading_its_history(
    config_file: Path, filled: Path
) -> None:
    now = datetime.now(UTC)
    with RunLock(filled), StateStore.open(filled) as store:
        store.save_health(Health(LOGIN, State.CONNECTED, now), os.getpid(), now)
        connected = invoke(config_file, "status")
        loading = Health(LOGIN, State.HISTORY, now, history=(0, 10_000))
        store.save_health(loading, os.getpid(), now)
        store.save_history(
            HistoryRecord(LOGIN, "reading", now, None, 250, 3, None, 0, None, None, None, now)
        )
        reading = invoke(config_file, "status", "--json")
    assert connected.exit_code == 0, connected.output
    assert "  triage: connected since " in connected.output
    assert reading.exit_code == 0, reading.output
    health = json.loads(reading.output)["logins"][0]["health"]
    assert (health["state"], health["ok"]) == ("history loading", True)
    assert health["history"] == {"read": 250, "limit": 10_000}


def test_status_leaves_out_the_health_a_stopped_run_wrote(config_file: Path, filled: Path) -> None:
    now = datetime.now(UTC)
    with StateStore.open(filled) as store:
        failing = Health(LOGIN, State.UNREACHABLE, now, reason="no route", failing_since=now)
        store.save_health(failing, os.getpid(), now)
    result = invoke(config_file, "status", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["logins"][0]["health"] is None


def test_status_uses_the_state_dir_option(config_file: Path, filled: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    data = json.loads(invoke(config_file, "status", "--json", "--state-dir", str(other)).output)
    assert data["state_exists"] is False
    assert data["state_file"] == str(other / FILENAME)


def test_status_default_login_without_login_tables(tmp_path: Path, state: Path) -> None:
    config_file = tmp_path / "bare.toml"
    config_file.write_text(f'[proxy]\nstate_dir = "{state}"\n')
    data = json.loads(invoke(config_file, "status", "--json").output)
    assert [login["login"] for login in data["logins"]] == ["default"]


def test_status_reports_config_errors(tmp_path: Path) -> None:
    config_file = tmp_path / "bad.toml"
    config_file.write_text("[proxy]\nstate_dir = 3\n")
    result = invoke(config_file, "status")
    assert result.exit_code == 2
    assert "[proxy] state_dir" in result.output
    assert "bad.toml:2" in result.output


def test_model_paths_match_the_model_store() -> None:
    from commsproxy.models.store import bundled_model_path, user_model_path

    assert status_report.user_model_path() == user_model_path("urgency")
    assert status_report.bundled_model_path() == bundled_model_path("urgency")


def test_describe_model_prefers_a_trained_model(tmp_path: Path) -> None:
    user = tmp_path / "data" / "commsproxy" / "models" / "urgency.skops"
    user.parent.mkdir(parents=True)
    user.write_bytes(b"")
    assert status_report.describe_model(Config()) == f"default: your trained model at {user}"


# --- explain ------------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["note-2@example.com", "<note-2@example.com>"])
def test_explain_a_held_message(config_file: Path, filled: Path, given: str) -> None:
    result = invoke(config_file, "explain", given)
    assert result.exit_code == 0, result.output
    assert "<note-2@example.com>" in result.output
    assert f"{LOGIN}, " in result.output
    assert ": normal" in result.output
    assert "p(urgent): 0.20" in result.output
    assert "held in batch later (Later)" in result.output
    assert "why: normal because of test 2" in result.output
    assert "by rescue: urgent (was normal)" in result.output


def test_explain_delivered_message(config_file: Path, filled: Path) -> None:
    result = invoke(config_file, "explain", "<boss-1@example.com>")
    assert result.exit_code == 0, result.output
    assert "delivered to INBOX at once" in result.output
    assert "corrected" not in result.output


def test_explain_json(config_file: Path, filled: Path) -> None:
    result = invoke(config_file, "explain", "<note-2@example.com>", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["message_id"] == "note-2@example.com"
    [found] = data["decisions"]
    assert (found["label"], found["batch"], found["batch_mailbox"]) == ("normal", "later", "Later")
    assert found["held"] is True
    assert [c["kind"] for c in data["corrections"]] == ["rescue"]


def test_explain_unknown_message(config_file: Path, filled: Path) -> None:
    result = invoke(config_file, "explain", "<nobody@example.com>")
    assert result.exit_code == 1
    assert "no decision recorded for <nobody@example.com>" in result.output
    assert "state file was reset" in result.output


def test_explain_without_state_file(config_file: Path, state: Path) -> None:
    result = invoke(config_file, "explain", "x@example.com")
    assert result.exit_code == 1
    assert "no decision recorded for <x@example.com>" in result.output
    assert not state.exists()


# --- release ------------------------------------------------------------------------------------


@pytest.fixture
def no_direct_release(monkeypatch: pytest.MonkeyPatch) -> None:
    """An install whose direct release is missing: only a running proxy can release."""
    monkeypatch.setitem(sys.modules, RELEASE_MODULE, types.ModuleType(RELEASE_MODULE))


@pytest.fixture
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_now_module, "POLL_SECONDS", 0.01)


def test_release_needs_now(config_file: Path, state: Path) -> None:
    result = invoke(config_file, "release")
    assert result.exit_code == 2
    assert "say --now to release now" in result.output
    assert "`commsproxy run` runs" in result.output
    assert not state.exists()


def test_release_unknown_batch(config_file: Path, state: Path) -> None:
    result = invoke(config_file, "release", "--now", "--batch", "nope")
    assert result.exit_code == 2
    assert "--batch" in result.output
    assert "batches: later, bulk" in result.output
    assert not state.exists()


def test_release_unknown_login(config_file: Path) -> None:
    result = invoke(config_file, "release", "--now", "--login", "you@example.com")
    assert result.exit_code == 2
    assert "--login" in result.output
    assert LOGIN in result.output


class FakeRun:
    """What ``commsproxy run`` does with a release request: release, log it, mark it done."""

    def __init__(self, state: Path, moved: dict[str, int]) -> None:
        self.state, self.moved = state, moved
        self.seen: list[tuple[str | None, str | None]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        with StateStore.open(self.state) as store:
            while not self.stop.wait(0.01):
                for request in store.pending_release_requests():
                    self.seen.append((request.login, request.batch))
                    for batch, count in self.moved.items():
                        if request.batch in (None, batch):
                            started = datetime.now(UTC)
                            release_id = store.start_release(LOGIN, batch, None, started)
                            store.finish_release(release_id, count, datetime.now(UTC))
                    store.complete_release_request(request.id, datetime.now(UTC))


@pytest.fixture
def running(state: Path) -> Iterator[RunLock]:
    """The lock as a running proxy holds it (a second lock in this process conflicts too)."""
    with RunLock(state) as lock:
        yield lock


@pytest.fixture
def fake_run(state: Path, running: RunLock, fast_polling: None) -> Iterator[FakeRun]:
    with StateStore.open(state) as store:  # a running proxy has made the state file
        old = datetime.now(UTC) - timedelta(hours=3)
        store.finish_release(store.start_release(LOGIN, "later", old, old), 99, old)
    fake = FakeRun(state, {"later": 3, "bulk": 5})
    fake.thread.start()
    yield fake
    fake.stop.set()
    fake.thread.join(timeout=10)


@pytest.mark.usefixtures("no_direct_release")
def test_release_through_the_running_proxy(config_file: Path, fake_run: FakeRun) -> None:
    result = invoke(config_file, "release", "--now")
    assert result.exit_code == 0, result.output
    assert "later (Later): released 3 messages to INBOX" in result.output
    assert "bulk (Later/Bulk): released 5 messages to INBOX" in result.output
    assert "released by commsproxy run" in result.output
    assert fake_run.seen == [(None, None)]
    assert pending(fake_run.state) == []


@pytest.mark.usefixtures("no_direct_release")
def test_release_one_batch_through_the_running_proxy_json(
    config_file: Path, fake_run: FakeRun
) -> None:
    result = invoke(config_file, "release", "--now", "--batch", "bulk", "--login", LOGIN, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["completed"] is True
    assert data["by"] == "run"
    assert data["released"] == {"bulk": 5}
    assert fake_run.seen == [(LOGIN, "bulk")]


@pytest.mark.usefixtures("running", "fast_polling", "no_direct_release")
def test_release_times_out_and_stays_queued(
    config_file: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(release_now_module, "WAIT_SECONDS", 0.1)
    result = invoke(config_file, "release", "--now")
    assert result.exit_code == 1
    assert "the request stays queued" in result.output
    assert len(pending(state)) == 1


def test_release_directly_when_not_running(
    config_file: Path, state: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[Config, str | None, str | None]] = []

    async def release_now(config: Config, login: str | None, batch: str | None) -> dict[str, int]:
        calls.append((config, login, batch))
        return {"later": 1}

    module = types.ModuleType(RELEASE_MODULE)
    module.release_without_run = release_now  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, RELEASE_MODULE, module)
    result = invoke(config_file, "release", "--now", "--batch", "later")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "later (Later): released 1 message to INBOX\n"
        "released by this command (commsproxy run is not running)\n"
    )
    [(config, login, batch)] = calls
    assert config == load_config(config_file)
    assert (login, batch) == (None, "later")
    assert pending(state) == []  # done: a later `run` must not release again

    other = tmp_path / "other"
    result = invoke(config_file, "release", "--now", "--state-dir", str(other), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["by"] == "direct"
    assert calls[-1][0].proxy.state_dir == other


@pytest.mark.usefixtures("no_direct_release")
def test_release_without_run_or_direct_release_stays_queued(config_file: Path, state: Path) -> None:
    result = invoke(config_file, "release", "--now")
    assert result.exit_code == 1
    assert "start `commsproxy run`" in result.output
    assert len(pending(state)) == 1


def test_release_direct_failure_stays_queued(
    config_file: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def release_now(config: Config, login: str | None, batch: str | None) -> dict[str, int]:
        raise ConnectionRefusedError("connection refused")

    module = types.ModuleType(RELEASE_MODULE)
    module.release_without_run = release_now  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, RELEASE_MODULE, module)
    result = invoke(config_file, "release", "--now")
    assert result.exit_code == 1
    assert "release failed: connection refused" in result.output
    assert len(pending(state)) == 1


# --- status: the history with senders -----------------------------------------------------

STARTED = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def record(state: str, *, stopped: str | None = None) -> HistoryRecord:
    return HistoryRecord(
        login=LOGIN,
        state=state,
        started=STARTED,
        finished=STARTED + timedelta(seconds=60) if state == "ready" else None,
        messages=4200,
        folders=7,
        stopped=stopped,
        senders=312,
        sent_mailbox="Sent",
        sent_uidvalidity=7,
        sent_uid=900,
        updated=STARTED + timedelta(hours=2),
        document=json.dumps({"senders": {"ann@acme.example": [3, 2, [10.0]]}}),
    )


@pytest.mark.parametrize(
    ("saved", "line"),
    [
        (None, "history with senders: not read yet (read at the first start of `run`)"),
        (record("reading"), "history with senders: reading, 4200 headers from 7 folder(s) so far"),
        (
            record("ready", stopped="time"),
            "history with senders: 312 senders; 4200 headers from 7 folder(s) at the first start"
            " (stopped at history_seconds), 2026-05-04 09:01",
        ),
    ],
)
def test_status_says_how_the_history_was_read(
    config_file: Path,
    state: Path,
    saved: HistoryRecord | None,
    line: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    with StateStore.open(state) as store:
        if saved is not None:
            store.save_history(saved)
    result = invoke(config_file, "status")
    assert result.exit_code == 0, result.output
    assert line in result.output
    assert "ann@acme.example" not in result.output


def test_status_json_has_the_history_counts(config_file: Path, state: Path) -> None:
    with StateStore.open(state) as store:
        store.save_history(record("ready"))
    result = invoke(config_file, "status", "--json")
    assert result.exit_code == 0, result.output
    [login] = json.loads(result.output)["logins"]
    assert login["history"] == {
        "state": "ready",
        "started": "2026-05-04T09:00:00+00:00",
        "finished": "2026-05-04T09:01:00+00:00",
        "messages": 4200,
        "folders": 7,
        "stopped": None,
        "senders": 312,
        "updated": "2026-05-04T11:00:00+00:00",
    }
    assert "ann@acme.example" not in result.output


# --- status: the first start ------------------------------------------------------------------


def test_status_says_what_the_first_start_left_in_place(
    config_file: Path, state: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    result = invoke(config_file, "status")
    assert "first start: not yet (mail already in INBOX then is tagged and left in place)" in (
        result.output
    )
    with StateStore.open(state) as store:
        store.first_start(LOGIN, 7, 1200, 1187, 86400.0, STARTED)
    result = invoke(config_file, "status")
    assert result.exit_code == 0, result.output
    assert (
        "first start: 2026-05-04 09:00 UTC: 1187 message(s) already in INBOX left in place;"
        " unread mail of the last 24 hour(s) was triaged"
    ) in result.output
    data = json.loads(invoke(config_file, "status", "--json").output)
    assert data["logins"][0]["first_start"] == {
        "at": "2026-05-04T09:00:00+00:00",
        "left_in_place": 1187,
        "window_seconds": 86400.0,
    }
