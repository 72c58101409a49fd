"""[[batch]] release times by weekday and quiet batches: read, and errors at file:line."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from commsproxy.config import load_config
from commsproxy.schedule import QuietHours

from .config_files import assert_config_error, write

WEEK = """[[batch]]
name = "later"
mailbox = "Later"
timezone = "Europe/Amsterdam"
release = { "mon-thu" = ["08:30", "12:30", "16:30"], fri = ["08:30", "12:30"], sat = ["10:00"] }
"""

QUIET = """[[batch]]
name = "later"
mailbox = "Later"
labels = ["bulk"]

[[batch]]
name = "evening"
mailbox = "Evening"
quiet = "18:00-08:00"
days = "mon-fri"
timezone = "Europe/Amsterdam"
"""


def test_release_by_weekday(tmp_path: Path) -> None:
    (batch,) = load_config(write(tmp_path, WEEK)).batches
    assert batch.schedule.times_on(0) == (time(8, 30), time(12, 30), time(16, 30))
    assert batch.schedule.times_on(4) == (time(8, 30), time(12, 30))
    assert batch.schedule.times_on(5) == (time(10, 0),)
    assert batch.schedule.times_on(6) == ()
    assert batch.quiet is None


def test_release_by_weekday_as_a_sub_table(tmp_path: Path) -> None:
    text = '[[batch]]\nname = "later"\nmailbox = "Later"\n[batch.release]\ndaily = ["09:00"]\n'
    (batch,) = load_config(write(tmp_path, text)).batches
    assert batch.schedule.days == set(range(7))


def test_quiet_batch(tmp_path: Path) -> None:
    later, evening = load_config(write(tmp_path, QUIET)).batches
    assert later.quiet is None
    assert evening.labels == ()
    assert evening.quiet == QuietHours(time(18), time(8), frozenset(range(5)))
    # released when each window ends: Tuesday to Saturday, 08:00
    assert evening.schedule.days == {1, 2, 3, 4, 5}
    assert evening.schedule.times == (time(8),)
    assert str(evening.schedule.zone) == "Europe/Amsterdam"


def test_quiet_batch_defaults_to_every_day(tmp_path: Path) -> None:
    text = '[[batch]]\nname = "evening"\nmailbox = "Evening"\nquiet = "18:00-08:00"\n'
    (evening,) = load_config(write(tmp_path, text)).batches
    assert evening.quiet is not None
    assert evening.quiet.days == set(range(7))


@pytest.mark.parametrize(
    ("text", "where", "label", "expectation"),
    [
        (
            WEEK + 'days = "mon-fri"\n',
            ("days", 1),
            "[batch] days",
            "release names its days already",
        ),
        (
            WEEK.replace('sat = ["10:00"]', '"thu-sat" = ["10:00"]'),
            ("release", 1),
            "[batch] release",
            "'thu-sat' and 'mon-thu' both name thu",
        ),
        (
            WEEK.replace('"10:00"', '"10h"'),
            ("release", 1),
            "[batch] release",
            "expected a time as HH:MM",
        ),
        (
            WEEK.replace('sat = ["10:00"]', 'weekend = ["10:00"]'),
            ("release", 1),
            "[batch] release",
            'expected days such as "mon-fri"',
        ),
        (
            WEEK.replace('sat = ["10:00"]', 'sat = "10:00"'),
            ("release", 1),
            "[batch] release",
            "expected a list of times",
        ),
        (
            WEEK.replace('sat = ["10:00"]', 'sat = { at = "10:00" }'),
            ("release", 1),
            "[batch] release",
            "'sat': expected a list of times",
        ),
        (
            QUIET.replace('"18:00-08:00"', '"18:00"'),
            ("quiet", 1),
            "[batch] quiet",
            "expected a window as HH:MM-HH:MM",
        ),
        (
            QUIET.replace('days = "mon-fri"', 'days = "workdays"'),
            ('days = "workdays"', 1),
            "[batch] days",
            'expected days such as "mon-fri"',
        ),
        (
            QUIET + 'labels = ["normal"]\n',
            ('labels = ["normal"]', 1),
            "[batch] labels",
            "a quiet batch has no labels of its own",
        ),
        (
            QUIET + 'release = ["08:00"]\n',
            ('release = ["08:00"]', 1),
            "[batch] release",
            "a quiet batch has no release times of its own",
        ),
        (
            QUIET + '\n[[batch]]\nname = "night"\nmailbox = "Night"\nquiet = "22:00-06:00"\n',
            ('quiet = "22:00-06:00"', 1),
            "[batch] quiet",
            "batch 'evening' is a quiet batch already",
        ),
    ],
    ids=[
        "days beside a table",
        "a day named twice",
        "a bad time in a table",
        "a bad day spec",
        "times not a list",
        "times a table",
        "quiet not a window",
        "quiet days",
        "quiet with labels",
        "quiet with release",
        "two quiet batches",
    ],
)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, where: tuple[str, int], label: str, expectation: str
) -> None:
    assert_config_error(tmp_path, text, where, label, expectation)
