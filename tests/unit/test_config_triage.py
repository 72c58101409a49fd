"""[triage] and [[batch]]: defaults, a full file, and errors that point at file:line and key."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commsproxy.config import (
    LABELS,
    BatchConfig,
    Config,
    ConfigError,
    TriageConfig,
    default_batches,
    load_config,
    local_zone,
)
from commsproxy.schedule import Schedule

from .config_files import assert_config_error, error_cases, write

WORKDAYS = frozenset(range(5))


@pytest.fixture(autouse=True)
def _zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed local zone, so defaults do not depend on the machine running the tests."""
    monkeypatch.setenv("TZ", "America/New_York")


def assert_default_batches(batches: tuple[BatchConfig, ...]) -> None:
    later, bulk = batches
    zone = ZoneInfo("America/New_York")
    assert later == BatchConfig(
        "later",
        "Later",
        ("normal",),
        Schedule((time(8, 30), time(12, 30), time(16, 30)), WORKDAYS, zone),
    )
    assert bulk == BatchConfig(
        "bulk", "Later/Bulk", ("bulk",), Schedule((time(16, 30),), WORKDAYS, zone)
    )
    assert (later.reappend, later.digest, bulk.reappend, bulk.digest) == (False, None, False, None)


def test_defaults_without_a_config_file(tmp_path: Path) -> None:
    config = load_config(tmp_path / "missing.toml")
    assert config == Config()
    assert config.triage == TriageConfig(
        enabled=True,
        vip=(),
        model=None,
        gate_timeout=5.0,
        body_prefix=64 << 10,
        hold_seen=False,
        digest=True,
    )
    assert_default_batches(config.batches)
    assert default_batches() == config.batches
    assert LABELS == ("urgent", "normal", "bulk")


def test_defaults_with_a_config_without_triage_or_batches(tmp_path: Path) -> None:
    text = '[proxy]\nimap = "127.0.0.1:2143"\n\n[accounts]\nroot = "Shared"\n'
    config = load_config(write(tmp_path, text), required=True)
    assert config.triage == TriageConfig()
    assert_default_batches(config.batches)
    assert config.accounts.root == "Shared"


def test_empty_triage_table_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[triage]\n"), required=True)
    assert config.triage == TriageConfig()
    assert_default_batches(config.batches)


FULL = """\
[triage]
enabled = false
vip = ["Boss@Example.COM", " *@Family.Example ", "boss@example.com"]
model = "~/models/mine.joblib"
gate_timeout = 2.5
body_prefix = "128K"
hold_seen = true
digest = false

[[batch]]
name = "news"
mailbox = "Held/News"
labels = ["bulk"]
release = ["17:00", "07:15"]
days = "mon,wed,fri"
timezone = "Europe/Amsterdam"
reappend = true
digest = true

[[batch]]
name = "work-later_2"
mailbox = "Held/Work"
labels = ["normal", "normal"]

[accounts]
root = "Public/Accounts"
"""


def test_full_triage_and_two_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(write(tmp_path, FULL), required=True)
    assert config.triage == TriageConfig(
        enabled=False,
        vip=("boss@example.com", "*@family.example"),
        model=str(tmp_path / "models" / "mine.joblib"),
        gate_timeout=2.5,
        body_prefix=128 << 10,
        hold_seen=True,
        digest=False,
    )
    news, work = config.batches
    assert news == BatchConfig(
        name="news",
        mailbox="Held/News",
        labels=("bulk",),
        schedule=Schedule(
            (time(7, 15), time(17, 0)), frozenset({0, 2, 4}), ZoneInfo("Europe/Amsterdam")
        ),
        reappend=True,
        digest=True,
    )
    assert work == BatchConfig(
        name="work-later_2",
        mailbox="Held/Work",
        labels=("normal",),
        schedule=Schedule(
            (time(8, 30), time(12, 30), time(16, 30)), WORKDAYS, ZoneInfo("America/New_York")
        ),
    )
    assert config.accounts.root == "Public/Accounts"


def test_configured_batches_replace_the_defaults(tmp_path: Path) -> None:
    """Bulk mail is held by no batch here, so it is delivered at once: no "bulk" default."""
    text = '[[batch]]\nname = "later"\nmailbox = "Later"\n'
    (batch,) = load_config(write(tmp_path, text)).batches
    assert (batch.name, batch.labels) == ("later", ("normal",))


def test_an_empty_batch_list_holds_nothing(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "batch = []\n")).batches == ()


@pytest.mark.parametrize(
    ("value", "model"),
    [
        ('"default"', None),
        ('"bundled"', None),
        ('"Default"', None),
        ('"~/m.joblib"', "{home}/m.joblib"),
        ('"/opt/models/triage.joblib"', "/opt/models/triage.joblib"),
        ('"relative/m.joblib"', "relative/m.joblib"),
    ],
)
def test_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, model: str) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config(write(tmp_path, f"[triage]\nmodel = {value}\n"))
    expected = model.format(home=tmp_path) if model else None
    assert config.triage.model == expected


@pytest.mark.parametrize(
    ("value", "vip"),
    [
        ("[]", ()),
        ('["A.B@X.ORG"]', ("a.b@x.org",)),
        ('["*@Example.com", "x@localhost"]', ("*@example.com", "x@localhost")),
        ('["me+tag@sub.example.co.uk", "ME+TAG@SUB.example.co.uk"]', ("me+tag@sub.example.co.uk",)),
    ],
)
def test_vip_is_lower_cased_and_deduplicated(
    tmp_path: Path, value: str, vip: tuple[str, ...]
) -> None:
    assert load_config(write(tmp_path, f"[triage]\nvip = {value}\n")).triage.vip == vip


@pytest.mark.parametrize(("value", "seconds"), [("1", 1.0), ("0.25", 0.25), ("60", 60.0)])
def test_gate_timeout_bounds(tmp_path: Path, value: str, seconds: float) -> None:
    timeout = load_config(
        write(tmp_path, f"[triage]\ngate_timeout = {value}\n")
    ).triage.gate_timeout
    assert (timeout, type(timeout)) == (seconds, float)


@pytest.mark.parametrize(("value", "size"), [("1024", 1024), ('"1K"', 1024), ('"16M"', 16 << 20)])
def test_body_prefix_bounds(tmp_path: Path, value: str, size: int) -> None:
    assert (
        load_config(write(tmp_path, f"[triage]\nbody_prefix = {value}\n")).triage.body_prefix
        == size
    )


# -- local time zone -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "name"),
    [
        ("Europe/Amsterdam", "Europe/Amsterdam"),
        (":Asia/Tokyo", "Asia/Tokyo"),
        ("/usr/share/zoneinfo/Australia/Sydney", "Australia/Sydney"),
        ("UTC", "UTC"),
    ],
)
def test_local_zone_from_tz(monkeypatch: pytest.MonkeyPatch, tz: str, name: str) -> None:
    monkeypatch.setenv("TZ", tz)
    assert local_zone() == ZoneInfo(name)
    assert str(local_zone()) == name


@pytest.mark.parametrize("tz", ["Mars/Olympus", "CET-1CEST", "", "../../etc/passwd"])
def test_local_zone_ignores_a_tz_that_is_no_zone_name(
    monkeypatch: pytest.MonkeyPatch, tz: str
) -> None:
    monkeypatch.delenv("TZ")
    machine = local_zone()
    monkeypatch.setenv("TZ", tz)
    assert local_zone() == machine
    assert local_zone() is not None


def test_batch_without_timezone_follows_tz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Pacific/Auckland")
    text = '[[batch]]\nname = "later"\nmailbox = "Later"\n'
    (batch,) = load_config(write(tmp_path, text)).batches
    assert batch.schedule.zone == ZoneInfo("Pacific/Auckland")


# -- errors that point at file:line, table and key ------------------------------------------------


def batch(**keys: str) -> str:
    """A ``[[batch]]`` table with a valid name and mailbox unless ``keys`` replaces them."""
    lines = {"name": '"later"', "mailbox": '"Later"', **keys}
    return "[[batch]]\n" + "".join(f"{k} = {v}\n" for k, v in lines.items() if v) + "\n"


TWO = batch() + batch(name='"news"', mailbox='"News"', labels='["bulk"]')

ERRORS: list[tuple[str, str, tuple[str, int], str, str]] = [
    # id, file text, (needle, occurrence) locating the line, "[table] key" or key, expectation
    ("triage not a table", "triage = 5\n", ("triage", 1), "triage", "expected a table: [triage]"),
    (
        "unknown triage key",
        "[triage]\nenabled = true\nvips = []\n",
        ("vips", 1),
        "[triage] vips",
        "unknown key (known keys here: body_prefix, digest, enabled, first_start_window, "
        "gate_timeout, history_messages, history_seconds, history_sent_check, hold_seen, model, "
        "never_urgent, notice_after, retry_max, urgent_tag, vip)",
    ),
    (
        "history_seconds negative",
        "[triage]\nhistory_seconds = -1\n",
        ("history_seconds", 1),
        "[triage] history_seconds",
        "expected seconds from 0 to 3600, got -1",
    ),
    (
        "history_seconds text",
        '[triage]\nhistory_seconds = "1m"\n',
        ("history_seconds", 1),
        "[triage] history_seconds",
        "expected a number of seconds, got '1m'",
    ),
    (
        "history_messages zero",
        "[triage]\ngate_timeout = 5\nhistory_messages = 0\n",
        ("history_messages", 1),
        "[triage] history_messages",
        "expected 1 to 1000000 messages, got 0",
    ),
    (
        "history_messages fraction",
        "[triage]\nhistory_messages = 2.5\n",
        ("history_messages", 1),
        "[triage] history_messages",
        "expected a whole number of messages, got 2.5",
    ),
    (
        "first_start_window negative",
        "[triage]\nenabled = true\nfirst_start_window = -1\n",
        ("first_start_window", 1),
        "[triage] first_start_window",
        "expected seconds from 0 to 604800, got -1",
    ),
    (
        "first_start_window text",
        '[triage]\nfirst_start_window = "1 day"\n',
        ("first_start_window", 1),
        "[triage] first_start_window",
        "expected a number of seconds",
    ),
    (
        "history_sent_check nan",
        "[triage]\nhistory_sent_check = nan\n",
        ("history_sent_check", 1),
        "[triage] history_sent_check",
        "expected seconds from 1 to 3600, got nan",
    ),
    (
        "enabled",
        '[triage]\nenabled = "yes"\n',
        ("enabled", 1),
        "[triage] enabled",
        "expected true or false, got 'yes'",
    ),
    (
        "hold_seen",
        "[triage]\nhold_seen = 1\n",
        ("hold_seen", 1),
        "[triage] hold_seen",
        "expected true or false",
    ),
    (
        "digest",
        '\n[triage]\n\ndigest = "no"\n',
        ("digest", 1),
        "[triage] digest",
        "expected true or false",
    ),
    (
        "vip not a list",
        '[triage]\nvip = "boss@example.com"\n',
        ("vip", 1),
        "[triage] vip",
        "expected a list of addresses",
    ),
    (
        "vip no domain",
        '[triage]\nvip = ["boss"]\n',
        ("vip", 1),
        "[triage] vip",
        "'boss': expected an address",
    ),
    (
        "vip star domain",
        '[triage]\nvip = ["*@"]\n',
        ("vip", 1),
        "[triage] vip",
        "'*@': expected an address",
    ),
    (
        "vip star in name",
        '[triage]\nvip = ["b*ss@x.org"]\n',
        ("vip", 1),
        "[triage] vip",
        '"*@domain"',
    ),
    (
        "vip two at",
        '[triage]\nvip = ["a@b@c"]\n',
        ("vip", 1),
        "[triage] vip",
        "expected an address",
    ),
    (
        "vip empty label",
        '[triage]\nvip = ["a@b..c"]\n',
        ("vip", 1),
        "[triage] vip",
        "expected an address",
    ),
    ("vip number", "[triage]\nvip = [5]\n", ("vip", 1), "[triage] vip", "5: expected an address"),
    (
        "model number",
        "[triage]\nmodel = 5\n",
        ("model", 1),
        "[triage] model",
        "expected a path to a model file",
    ),
    (
        "model empty",
        '[triage]\nmodel = ""\n',
        ("model", 1),
        "[triage] model",
        "expected a path to a model file",
    ),
    (
        "gate_timeout zero",
        "[triage]\ngate_timeout = 0\n",
        ("gate_timeout", 1),
        "[triage] gate_timeout",
        "expected seconds above 0 and at most 60, got 0",
    ),
    (
        "gate_timeout long",
        "[triage]\ngate_timeout = 60.5\n",
        ("gate_timeout", 1),
        "[triage] gate_timeout",
        "at most 60",
    ),
    (
        "gate_timeout nan",
        "[triage]\ngate_timeout = nan\n",
        ("gate_timeout", 1),
        "[triage] gate_timeout",
        "at most 60",
    ),
    (
        "gate_timeout text",
        '[triage]\ngate_timeout = "5"\n',
        ("gate_timeout", 1),
        "[triage] gate_timeout",
        "expected a number of seconds, got '5'",
    ),
    (
        "gate_timeout bool",
        "[triage]\ngate_timeout = true\n",
        ("gate_timeout", 1),
        "[triage] gate_timeout",
        "expected a number of seconds",
    ),
    (
        "body_prefix small",
        "[triage]\nbody_prefix = 1023\n",
        ("body_prefix", 1),
        "[triage] body_prefix",
        'expected a size from "1K" to "16M", got 1023',
    ),
    (
        "body_prefix large",
        '[triage]\nbody_prefix = "17M"\n',
        ("body_prefix", 1),
        "[triage] body_prefix",
        'from "1K" to "16M"',
    ),
    (
        "body_prefix bad",
        '[triage]\nbody_prefix = "1.5K"\n',
        ("body_prefix", 1),
        "[triage] body_prefix",
        "expected a size",
    ),
    (
        "batch not an array",
        'batch = "later"\n',
        ("batch", 1),
        "batch",
        "expected one or more [[batch]] tables",
    ),
    (
        "batch single brackets",
        '[batch]\nname = "later"\n',
        ("[batch]", 1),
        "batch",
        "(two brackets)",
    ),
    (
        "unknown batch key",
        TWO.replace('labels = ["bulk"]', 'relase = ["08:00"]'),
        ("relase", 1),
        "[batch] relase",
        "unknown key (known keys here: days, digest, labels, mailbox, name, reappend, release, "
        "timezone)",
    ),
    (
        "name missing",
        batch() + batch(name=""),
        ("[[batch]]", 2),
        "[batch] name",
        'missing (e.g. name = "later")',
    ),
    ("name number", batch(name="5"), ("name", 1), "[batch] name", "expected a name such as"),
    (
        "name characters",
        batch(name='"my batch"'),
        ("name", 1),
        "[batch] name",
        "'my batch': expected letters, digits, '-' and '_' only",
    ),
    ("name empty", batch(name='""'), ("name", 1), "[batch] name", "expected letters"),
    (
        "name twice",
        batch() + batch(mailbox='"Other"', labels='["bulk"]'),
        ("name", 2),
        "[batch] name",
        "'later': another batch has this name already",
    ),
    (
        "mailbox missing",
        batch(mailbox=""),
        ("[[batch]]", 1),
        "[batch] mailbox",
        'missing (e.g. mailbox = "Later")',
    ),
    (
        "mailbox number",
        batch(mailbox="1"),
        ("mailbox", 1),
        "[batch] mailbox",
        "expected a mailbox such as",
    ),
    (
        "mailbox INBOX",
        batch(mailbox='"INBOX"'),
        ("mailbox", 1),
        "[batch] mailbox",
        "'INBOX': held mail cannot stay in INBOX",
    ),
    (
        "mailbox inbox",
        batch(mailbox='"Inbox"'),
        ("mailbox", 1),
        "[batch] mailbox",
        "cannot stay in INBOX",
    ),
    (
        "mailbox under inbox",
        batch(mailbox='"inbox/Later"'),
        ("mailbox", 1),
        "[batch] mailbox",
        "or a mailbox under it",
    ),
    ("mailbox empty", batch(mailbox='""'), ("mailbox", 1), "[batch] mailbox", "no empty parts"),
    (
        "mailbox leading slash",
        batch(mailbox='"/Later"'),
        ("mailbox", 1),
        "[batch] mailbox",
        "no empty parts",
    ),
    (
        "mailbox trailing slash",
        batch(mailbox='"Later/"'),
        ("mailbox", 1),
        "[batch] mailbox",
        "no empty parts",
    ),
    (
        "mailbox double slash",
        batch(mailbox='"Later//Bulk"'),
        ("mailbox", 1),
        "[batch] mailbox",
        "no empty parts",
    ),
    (
        "mailbox star",
        batch(mailbox='"Later/*"'),
        ("mailbox", 1),
        "[batch] mailbox",
        'expected no "*" or "%"',
    ),
    (
        "mailbox percent",
        batch(mailbox='"50%"'),
        ("mailbox", 1),
        "[batch] mailbox",
        'expected no "*" or "%"',
    ),
    (
        "mailbox twice",
        batch() + batch(name='"news"', labels='["bulk"]'),
        ("mailbox", 2),
        "[batch] mailbox",
        "'Later': batch 'later' holds its mail there already",
    ),
    (
        "labels urgent",
        batch(labels='["normal", "urgent"]'),
        ("labels", 1),
        "[batch] labels",
        "urgent mail is always delivered at once",
    ),
    (
        "labels unknown",
        batch(labels='["spam"]'),
        ("labels", 1),
        "[batch] labels",
        "'spam': expected 'normal' or 'bulk'",
    ),
    (
        "labels empty",
        batch(labels="[]"),
        ("labels", 1),
        "[batch] labels",
        "expected at least one label",
    ),
    (
        "labels not a list",
        batch(labels='"bulk"'),
        ("labels", 1),
        "[batch] labels",
        "expected a list of labels",
    ),
    (
        "label in two batches",
        batch(labels='["normal", "bulk"]')
        + batch(name='"news"', mailbox='"News"', labels='["bulk"]'),
        ("labels", 2),
        "[batch] labels",
        "'bulk' is held by both batch 'later' and batch 'news'; "
        "a label can be held by one batch only",
    ),
    (
        "default label in two batches",
        batch() + batch(name='"news"', mailbox='"News"'),
        ("[[batch]]", 2),
        "[batch] labels",
        "'normal' is held by both batch 'later' and batch 'news'",
    ),
    (
        "release bad time",
        batch(release='["08:30", "25:00"]'),
        ("release", 1),
        "[batch] release",
        "'25:00': expected a time as HH:MM",
    ),
    (
        "release dot",
        batch(release='["8.30"]'),
        ("release", 1),
        "[batch] release",
        "expected a time as HH:MM",
    ),
    (
        "release empty",
        batch(release="[]"),
        ("release", 1),
        "[batch] release",
        "expected at least one release time",
    ),
    (
        "release string",
        batch(release='"08:30"'),
        ("release", 1),
        "[batch] release",
        "expected a list of times",
    ),
    (
        "release number",
        batch(release="[830]"),
        ("release", 1),
        "[batch] release",
        'expected times as "HH:MM" strings',
    ),
    (
        "days bad",
        batch(days='"weekdays"'),
        ("days", 1),
        "[batch] days",
        "'weekdays': expected days such as",
    ),
    ("days empty", batch(days='""'), ("days", 1), "[batch] days", "'': expected days such as"),
    ("days list", batch(days='["mon"]'), ("days", 1), "[batch] days", "expected days such as"),
    (
        "timezone",
        batch(timezone='"Mars/Olympus"'),
        ("timezone", 1),
        "[batch] timezone",
        "'Mars/Olympus': expected a time zone such as Europe/Amsterdam",
    ),
    (
        "timezone path",
        batch(timezone='"../etc/localtime"'),
        ("timezone", 1),
        "[batch] timezone",
        "expected a time zone",
    ),
    (
        "timezone number",
        batch(timezone="1"),
        ("timezone", 1),
        "[batch] timezone",
        "expected a time zone",
    ),
    (
        "reappend",
        batch(reappend='"no"'),
        ("reappend", 1),
        "[batch] reappend",
        "expected true or false",
    ),
    (
        "batch digest",
        TWO + 'digest = "yes"\n',
        ("digest", 1),
        "[batch] digest",
        "expected true or false, got 'yes'",
    ),
]


@error_cases(ERRORS)
def test_error_names_file_line_table_key_and_expectation(
    tmp_path: Path, text: str, where: tuple[str, int], label: str, expectation: str
) -> None:
    assert_config_error(tmp_path, text, where, label, expectation)


def test_timezone_error_reads_as_documented(tmp_path: Path) -> None:
    text = batch(release='["09:00"]', days='"daily"', timezone='"Mars/Olympus"')
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:6: [batch] timezone: 'Mars/Olympus': expected a time zone such as Europe/Amsterdam"
    )


def test_history_keys(tmp_path: Path) -> None:
    """Bounds of the first read of the history with senders, and how often Sent is looked at."""
    assert (TriageConfig().history_seconds, TriageConfig().history_messages) == (60.0, 10_000)
    text = "[triage]\nhistory_seconds = 0\nhistory_messages = 500\nhistory_sent_check = 2.5\n"
    triage = load_config(write(tmp_path, text)).triage
    assert (triage.history_seconds, triage.history_messages, triage.history_sent_check) == (
        0.0,
        500,
        2.5,
    )


def test_first_start_window(tmp_path: Path) -> None:
    """Unread mail of the last day is triaged at a first start by default; 0 leaves all of it."""
    assert TriageConfig().first_start_window == 86400.0
    for text, expected in (("0", 0.0), ("3600", 3600.0), ("1.5", 1.5)):
        path = write(tmp_path, f"[triage]\nfirst_start_window = {text}\n")
        assert load_config(path).triage.first_start_window == expected
