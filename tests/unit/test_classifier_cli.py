"""`commsproxy train` and `commsproxy classify` on a small mailbox the test writes itself."""

from __future__ import annotations

import json
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.classifier.dataset import iter_mailbox
from commsproxy.classifier.features import Sample
from commsproxy.classifier.workflow import train_urgency_from_mailboxes
from commsproxy.cli import main
from commsproxy.models.store import load_model
from tests.mailfactory import START, everyday_mail, render


def _write(path: Path, headers: dict[str, str], body: str) -> None:
    _store(path, render(headers, body))


def build_mailbox(root: Path, count: int = 90) -> Path:
    """A person's mail tree: an inbox and a sent folder (see tests/mailfactory.py)."""
    for exchange in everyday_mail(count):
        _store(root / "inbox" / str(exchange.index), exchange.received)
        if exchange.reply is not None:
            _store(root / "sent" / str(exchange.index), exchange.reply)
    return root


def _store(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@pytest.fixture(autouse=True)
def private_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the developer's own trained models."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))


@pytest.fixture(scope="module")
def mailbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mailbox(tmp_path_factory.mktemp("mail"))


@pytest.fixture(scope="module")
def model(mailbox: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "urgency.skops"
    result = CliRunner().invoke(
        main, ["train", "--mailbox", str(mailbox), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "30 urgent, 30 normal, 30 bulk" in result.output
    assert "of urgent mail at once and holds" in result.output
    return out


def test_classify_json_shape(model: Path, mailbox: Path) -> None:
    result = CliRunner().invoke(
        main, ["classify", "--model", str(model), "--json", str(mailbox / "inbox" / "1")]
    )
    assert result.exit_code == 0, result.output
    (line,) = result.output.strip().splitlines()
    record = json.loads(line)
    assert set(record) == {
        "path",
        "label",
        "p_urgent",
        "urgent_from",
        "account",
        "account_score",
        "reasons",
    }
    assert record["path"].endswith("inbox/1")
    assert record["label"] == "bulk"
    assert 0.0 <= record["p_urgent"] <= 1.0
    assert record["account"] is None  # no accounts model
    assert record["reasons"] is None  # only with --explain


def test_classify_explain_uses_history(model: Path, mailbox: Path) -> None:
    late = mailbox / "inbox" / "87"  # from the boss, after many fast replies
    result = CliRunner().invoke(
        main,
        ["classify", "--model", str(model), "--history", str(mailbox), "--explain",
         "--json", str(late)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["label"] == "urgent"
    assert record["urgent_from"] is not None
    assert any(
        r.startswith("urgent: you answered") and r.endswith(" 29 times, median 20 min")
        for r in record["reasons"]
    ), record["reasons"]


def test_history_never_leaks_the_future(model: Path, mailbox: Path) -> None:
    first = mailbox / "inbox" / "0"  # the boss's first message: no replies before it
    result = CliRunner().invoke(
        main,
        ["classify", "--model", str(model), "--history", str(mailbox), "--explain",
         "--json", str(first)],
    )  # fmt: skip
    record = json.loads(result.output)
    assert not any("you replied" in r for r in record["reasons"])


def test_training_is_deterministic(mailbox: Path, tmp_path: Path) -> None:
    first = train_urgency_from_mailboxes([mailbox], tmp_path / "a", seed=7)
    second = train_urgency_from_mailboxes([mailbox], tmp_path / "b", seed=7)
    assert first.report.threshold == second.report.threshold
    samples = [Sample(m) for m in iter_mailbox(mailbox / "inbox")]
    a, _ = load_model(tmp_path / "a")
    b, _ = load_model(tmp_path / "b")
    assert (a.predict_proba(samples) == b.predict_proba(samples)).all()  # type: ignore[attr-defined]


def test_tampered_model_is_refused_by_classify(model: Path, mailbox: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.skops"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # (a zip's last byte is 0 already)
    copy.write_bytes(bytes(data))
    (tmp_path / "m.json").write_text(model.with_suffix(".json").read_text())
    result = CliRunner().invoke(
        main, ["classify", "--model", str(copy), str(mailbox / "inbox" / "1")]
    )
    assert result.exit_code == 1
    assert "does not match the checksum" in result.output


def train_three_accounts(tmp_path: Path) -> tuple[Path, str]:
    """``train --task accounts`` on 60 orders of acme, globex and initech: the model, output."""
    for i in range(60):
        account = ("acme", "globex", "initech")[i % 3]
        _write(
            tmp_path / "accounts" / account / f"{i}",
            {"From": f"someone@{account}.example", "To": "me@corp.example",
             "Subject": f"{account} order {i}", "Message-ID": f"<a{i}@x>",
             "Date": format_datetime(START + timedelta(hours=i))},
            f"About the {account} order and its {account} delivery.",
        )  # fmt: skip
    out = tmp_path / "accounts.skops"
    result = CliRunner().invoke(
        main, ["train", "--task", "accounts", "--folders", str(tmp_path / "accounts"),
               "--out", str(out), "-q"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out, result.output


def test_train_accounts_from_folders(tmp_path: Path) -> None:
    out, output = train_three_accounts(tmp_path)
    assert "3 accounts" in output
    sample = tmp_path / "new.eml"
    _write(
        sample,
        {
            "From": "someone@globex.example",
            "Subject": "globex order 99",
            "Date": format_datetime(START),
        },
        "About the globex order and its globex delivery.",
    )
    result = CliRunner().invoke(
        main,
        ["classify", "--accounts-model", str(out), "--json", str(sample)],
    )
    record = json.loads(result.output.strip().splitlines()[-1])
    assert record["account"] == "globex", record


def test_train_without_mailbox_names_the_flag() -> None:
    result = CliRunner().invoke(main, ["train", "--task", "urgency"])
    assert result.exit_code == 2
    assert "--mailbox" in result.output


def test_bad_label_flag(mailbox: Path) -> None:
    result = CliRunner().invoke(
        main, ["train", "--mailbox", str(mailbox), "--label", "important=/nope"]
    )
    assert result.exit_code == 2
    assert "--label" in result.output


def test_bundled_default_model_classifies_without_training(mailbox: Path) -> None:
    result = CliRunner().invoke(main, ["classify", "--json", str(mailbox / "inbox" / "1")])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    assert record["label"] in ("urgent", "normal", "bulk")


def test_train_on_three_urgent_messages_keeps_the_bundled_model(tmp_path: Path) -> None:
    """Too few urgent messages to measure a model of one's own: the notes say so in words."""
    for exchange in everyday_mail(60):
        _store(tmp_path / "inbox" / str(exchange.index), exchange.received)
        if exchange.reply is not None and exchange.index < 9:  # the boss's first three
            _store(tmp_path / "sent" / str(exchange.index), exchange.reply)
    out = tmp_path / "urgency.skops"
    result = CliRunner().invoke(
        main, ["train", "--mailbox", str(tmp_path), "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    assert "3 urgent" in result.output
    notes = [line for line in result.output.splitlines() if line.startswith("note: ")]
    assert any("urgent messages" in note and "at least 20 are needed" in note for note in notes)
    assert "note: keeping the bundled model, with your history with senders" in notes
    _, info = load_model(out)
    assert info.metrics["choice"] == "the bundled model as it is"
