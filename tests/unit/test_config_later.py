"""[followup], [snooze], [autoreply], the +urgent tag, sla and collision: values and errors."""

from __future__ import annotations

from datetime import time
from pathlib import Path

from commsproxy.config import (
    AutoreplyConfig,
    FollowupConfig,
    SnoozeConfig,
    load_config,
)
from commsproxy.timespec import When

from .config_files import assert_config_error, error_cases, write

FULL = """
[triage]
urgent_tag = "Dringend"

[followup]
days = 2
workdays = "mon-thu"

[snooze]
root = "Later/Snoozed"
morning = "07:30"

[snooze.boxes]
"After lunch" = "13:30"
"In 2 hours" = "off"

[autoreply]
enabled = true
message = "I read mail at {release}. {urgent}"
urgent = "call +32 2 123 45 67"

[accounts]
collision = "hold"

[accounts.acme]
domains = ["acme.com"]
sla = "1h"
followup_days = 1
"""


def test_defaults(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.toml")
    assert config.followup == FollowupConfig(True, 3, frozenset(range(5)))
    assert config.snooze.enabled
    assert config.snooze.root == "Snoozed"
    assert [name for name, _ in config.snooze.boxes] == [
        "Tomorrow",
        "Monday",
        "Next week",
        "In 2 hours",
    ]
    assert config.autoreply == AutoreplyConfig(enabled=False)
    assert config.triage.urgent_tag == "urgent"
    assert config.accounts.collision == "warn"


def test_a_full_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL))
    assert config.triage.urgent_tag == "dringend"
    assert config.followup == FollowupConfig(True, 2, frozenset(range(4)))
    assert config.snooze == SnoozeConfig(
        True,
        "Later/Snoozed",
        time(7, 30),
        (
            ("Tomorrow", When(day="tomorrow")),
            ("Monday", When(day="0")),
            ("Next week", When(day="next week")),
            ("After lunch", When(at=time(13, 30))),
        ),
    )
    assert config.autoreply == AutoreplyConfig(
        True, "I read mail at {release}. {urgent}", "call +32 2 123 45 67"
    )
    assert config.accounts.collision == "hold"
    (acme,) = config.accounts.accounts
    assert (acme.sla, acme.followup_days) == (When(minutes=60), 1)


CASES = [
    ("followup days", "[followup]\ndays = 0\n", ("days", 1), "[followup] days", "1 to 60"),
    (
        "followup workdays",
        '[followup]\nworkdays = "weekdays"\n',
        ("workdays", 1),
        "[followup] workdays",
        "mon-fri",
    ),
    (
        "unknown followup key",
        "[followup]\nday = 2\n",
        ("day =", 1),
        "[followup] day",
        "unknown key (known keys here: days, enabled, workdays)",
    ),
    (
        "snooze box rule",
        '[snooze.boxes]\n"Later today" = "soon"\n',
        ("Later today", 1),
        "[snooze.boxes] Later today",
        '"tomorrow"',
    ),
    (
        "snooze box name",
        '[snooze.boxes]\n"a/b" = "2h"\n',
        ("a/b", 1),
        "[snooze.boxes] a/b",
        'without "/"',
    ),
    (
        "snooze root in INBOX",
        '[snooze]\nroot = "INBOX/Snoozed"\n',
        ("root", 1),
        "[snooze] root",
        "INBOX",
    ),
    (
        "snooze morning",
        '[snooze]\nmorning = "8am"\n',
        ("morning", 1),
        "[snooze] morning",
        "HH:MM",
    ),
    (
        "autoreply placeholder",
        '[autoreply]\nmessage = "back at {when}"\n',
        ("message", 1),
        "[autoreply] message",
        "{release} and {urgent}",
    ),
    (
        "urgent tag",
        '[triage]\nurgent_tag = "ur gent"\n',
        ("urgent_tag", 1),
        "[triage] urgent_tag",
        "letters, digits",
    ),
    (
        "collision",
        '[accounts]\ncollision = "loud"\n',
        ("collision", 1),
        "[accounts] collision",
        '"warn", "hold" or "off"',
    ),
    (
        "sla in days",
        '[accounts.acme]\ndomains = ["acme.com"]\nsla = "2d"\n',
        ("sla", 1),
        "[accounts.acme] sla",
        "hours or minutes",
    ),
    (
        "sla unreadable",
        '[accounts.acme]\ndomains = ["acme.com"]\nsla = "fast"\n',
        ("sla", 1),
        "[accounts.acme] sla",
        "expected a time",
    ),
    (
        "followup_days",
        '[accounts.acme]\ndomains = ["acme.com"]\nfollowup_days = -1\n',
        ("followup_days", 1),
        "[accounts.acme] followup_days",
        "0 to 60",
    ),
]


@error_cases(CASES)
def test_error_names_file_line_table_key_and_expectation(
    tmp_path: Path, text: str, where: tuple[str, int], label: str, expectation: str
) -> None:
    assert_config_error(tmp_path, text, where, label, expectation)
