"""`commsproxy accounts add`, and the accounts model as filing uses it (loaded as `run` does)."""

from __future__ import annotations

from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.classifier.mail import parse_mail
from commsproxy.cli import main
from commsproxy.config import load_config, parse_config_text
from commsproxy.service import _load_accounts_model
from commsproxy.triage.account_match import AccountRules, resolve_incoming
from tests.mailfactory import START, render

from .test_classifier_cli import train_three_accounts


def test_add_writes_a_table_that_loads(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('# my settings\n[triage]\nvip = ["boss@example.com"]\n', encoding="utf-8")
    result = CliRunner().invoke(
        main, ["accounts", "add", "Acme Corp", "--domain", "acme.com", "--address",
               "buyer@gmail.com", "--owner", "alice@example.com", "--config", str(config)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = config.read_text(encoding="utf-8")
    assert text.startswith("# my settings\n")  # the user's own text and comments stay
    assert config.stat().st_mode & 0o777 == 0o600  # it may name password commands
    (account,) = load_config(config, required=True).accounts.accounts
    assert (account.key, account.name, account.domains, account.addresses, account.owner) == (
        "acme-corp", "Acme Corp", ("acme.com",), ("buyer@gmail.com",), "alice@example.com"
    )  # fmt: skip


def test_add_refuses_a_claimed_domain_and_leaves_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    runner = CliRunner()
    args = ["--config", str(config)]
    assert (
        runner.invoke(main, ["accounts", "add", "Acme", "--domain", "acme.com", *args]).exit_code
        == 0
    )
    before = config.read_text(encoding="utf-8")
    result = runner.invoke(main, ["accounts", "add", "Other", "--domain", "ACME.com", *args])
    assert result.exit_code == 2
    assert "--domain" in result.output
    assert "belongs to [accounts.acme]" in result.output
    assert config.read_text(encoding="utf-8") == before


def test_add_needs_a_rule(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["accounts", "add", "Acme", "--config", str(tmp_path / "c.toml")]
    )
    assert result.exit_code == 2
    assert "--domain or --address" in result.output
    assert not (tmp_path / "c.toml").exists()


@pytest.fixture
def accounts_model(tmp_path: Path) -> Path:
    return train_three_accounts(tmp_path)[0]


def test_the_accounts_model_files_what_the_rules_leave(
    accounts_model: Path, tmp_path: Path
) -> None:
    config = parse_config_text(
        tmp_path / "c.toml",
        f'[accounts]\nmodel = "{accounts_model}"\ninternal_domains = ["corp.example"]\n',
    )
    guesser = _load_accounts_model(config)
    assert guesser is not None
    rules = AccountRules(config.accounts)
    outsider = parse_mail(render(
        {"From": "someone@globex.example", "To": "me@corp.example",
         "Subject": "globex order 99", "Date": format_datetime(START)},
        "About the globex order and its globex delivery.",
    ))  # fmt: skip
    colleague = parse_mail(render(
        {"From": "bob@corp.example", "To": "me@corp.example",
         "Subject": "globex order 99", "Date": format_datetime(START)},
        "About the globex order and its globex delivery.",
    ))  # fmt: skip
    filed, internal = resolve_incoming([outsider, colleague], rules, guesser)
    assert filed is not None
    assert filed.account == "globex"
    assert filed.reason.startswith("accounts model, confidence")
    assert internal is None  # colleagues' mail is never the model's to file


def test_no_accounts_model_when_none_is_configured(tmp_path: Path) -> None:
    config = parse_config_text(tmp_path / "c.toml", '[accounts]\nmodel = "none"\n')
    assert _load_accounts_model(config) is None
