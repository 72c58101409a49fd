"""Editing ``[triage] vip`` and ``never_urgent`` in the user's own config file: only the one
list changes, every other line stays byte for byte, and a bad edit leaves the file alone."""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path

import pytest

from commsproxy.config import load_config
from commsproxy.init import write_initial_config
from commsproxy.sender_rules import SenderRuleError, change_sender_rule, sender_lists

COMMENTED = """\
# My commsproxy, tuned by hand.   Odd spacing kept.

[proxy]
imap = "127.0.0.1:1143"   # the mail program connects here
# state_dir = "~/.local/state/commsproxy"

[triage]
# The people I answer at once.
vip = [
    "Boss@Example.com",  # my boss, mixed case on purpose
    "*@family.example",
]
# never_urgent = ["alerts@example.net"]
gate_timeout = 5  # seconds

# Batches: twice a day.
[[batch]]
name = "later"   # the usual
mailbox = "Later"
labels = ["normal", "bulk"]
release = ["08:30", "16:30"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def changed_lines(before: str, after: str) -> tuple[list[str], list[str]]:
    """Lines only in ``before`` and lines only in ``after`` (a line diff)."""
    gone: list[str] = []
    new: list[str] = []
    for line in difflib.ndiff(before.splitlines(True), after.splitlines(True)):
        if line.startswith("- "):
            gone.append(line[2:])
        elif line.startswith("+ "):
            new.append(line[2:])
    return gone, new


def test_always_adds_to_vip_and_keeps_every_other_line(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    change = change_sender_rule(path, " CEO@Example.COM ", "always")
    after = path.read_text(encoding="utf-8")
    assert change.added
    assert change.now_in == "vip"
    assert change.pattern == "ceo@example.com"
    gone, new = changed_lines(COMMENTED, after)
    assert gone == []
    assert new == ['    "ceo@example.com",\n']
    assert load_config(path).triage.vip == (
        "boss@example.com",
        "*@family.example",
        "ceo@example.com",
    )


def test_never_adds_the_key_after_its_commented_example(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    change_sender_rule(path, "alerts@example.net", "never")
    after = path.read_text(encoding="utf-8")
    gone, new = changed_lines(COMMENTED, after)
    assert gone == []
    assert new == ['never_urgent = ["alerts@example.net"]\n']
    lines = after.splitlines()
    assert lines[lines.index('never_urgent = ["alerts@example.net"]') - 1].startswith(
        "# never_urgent ="
    )
    assert load_config(path).triage.never_urgent == ("alerts@example.net",)


def test_a_sender_moves_between_the_lists(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    change = change_sender_rule(path, "boss@example.com", "never")  # case-blind match
    assert change.removed_from == ("vip",)
    assert change.now_in == "never_urgent"
    triage = load_config(path).triage
    assert triage.vip == ("*@family.example",)
    assert triage.never_urgent == ("boss@example.com",)
    back = change_sender_rule(path, "boss@example.com", "always")
    assert back.removed_from == ("never_urgent",)
    triage = load_config(path).triage
    assert triage.vip == ("*@family.example", "boss@example.com")
    assert triage.never_urgent == ()
    # Every line outside the two lists is as the user wrote it.
    gone, new = changed_lines(COMMENTED, path.read_text(encoding="utf-8"))
    assert all("example.com" in line.lower() or "never_urgent = " in line for line in gone + new)


def test_forget_takes_it_out_of_both_and_twice_is_harmless(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    change = change_sender_rule(path, "*@family.example", "forget")
    assert change.removed_from == ("vip",)
    assert change.now_in is None
    assert load_config(path).triage.vip == ("boss@example.com",)
    text = path.read_text(encoding="utf-8")
    again = change_sender_rule(path, "*@family.example", "forget")
    assert not again.changed
    assert "nothing to forget" in again.words()
    assert path.read_text(encoding="utf-8") == text


def test_adding_what_is_there_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, COMMENTED)
    stamp = path.stat().st_mtime_ns
    change = change_sender_rule(path, "boss@example.com", "always")
    assert not change.changed
    assert "already" in change.words()
    assert path.stat().st_mtime_ns == stamp
    assert path.read_text(encoding="utf-8") == COMMENTED


def test_the_config_init_writes(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_initial_config(path, upstream="imaps://imap.example.org", username="me@example.org")
    before = path.read_text(encoding="utf-8")
    change_sender_rule(path, "*@bigcustomer.example", "always")
    change_sender_rule(path, "news@shop.example", "never")
    after = path.read_text(encoding="utf-8")
    gone, new = changed_lines(before, after)
    assert gone == []
    assert new == ['vip = ["*@bigcustomer.example"]\n', 'never_urgent = ["news@shop.example"]\n']
    # Each key right under its commented-out example, where init explains it.
    lines = after.splitlines()
    vip = lines.index('vip = ["*@bigcustomer.example"]')
    assert lines[vip - 1].startswith("# vip =")
    never = lines.index('never_urgent = ["news@shop.example"]')
    assert lines[never - 1].startswith(("# never_urgent =", 'vip = ["*@bigcustomer'))
    triage = load_config(path).triage
    assert triage.vip == ("*@bigcustomer.example",)
    assert triage.never_urgent == ("news@shop.example",)


def test_a_config_without_triage_gets_the_table(tmp_path: Path) -> None:
    text = '# minimal\n[proxy]\nimap = "127.0.0.1:1143"\n'
    path = write(tmp_path, text)
    change_sender_rule(path, "a@b.example", "always")
    after = path.read_text(encoding="utf-8")
    assert after.startswith(text)
    assert load_config(path).triage.vip == ("a@b.example",)


def test_forget_on_a_config_without_triage_writes_nothing(tmp_path: Path) -> None:
    text = "[proxy]\n"
    path = write(tmp_path, text)
    assert not change_sender_rule(path, "a@b.example", "forget").changed
    assert path.read_text(encoding="utf-8") == text


@pytest.mark.parametrize("bad", ["", "boss", "@example.com", "a@*.example.com", "a b@x.com", "*@"])
def test_a_bad_pattern_is_refused_and_the_file_untouched(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path, COMMENTED)
    with pytest.raises(SenderRuleError, match="expected an address"):
        change_sender_rule(path, bad, "always")
    assert path.read_text(encoding="utf-8") == COMMENTED


def test_a_config_with_errors_is_left_untouched_and_the_error_names_the_line(
    tmp_path: Path,
) -> None:
    text = COMMENTED.replace("gate_timeout = 5", "gate_timeout = 500")
    path = write(tmp_path, text)
    with pytest.raises(SenderRuleError) as caught:
        change_sender_rule(path, "x@example.com", "always")
    message = str(caught.value)
    line = text.splitlines().index("gate_timeout = 500  # seconds") + 1
    assert f"{path}:{line}" in message
    assert "gate_timeout" in message
    assert "left as it is" in message
    assert path.read_text(encoding="utf-8") == text


def test_the_file_stays_owner_only_and_a_symlink_stays_a_symlink(tmp_path: Path) -> None:
    real = write(tmp_path, COMMENTED)
    real.chmod(0o644)
    link = tmp_path / "link.toml"
    link.symlink_to(real)
    change_sender_rule(link, "x@example.com", "always")
    assert link.is_symlink()
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o600
    assert sender_lists(link)["vip"][-1] == "x@example.com"


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(SenderRuleError, match="no config file"):
        change_sender_rule(tmp_path / "none.toml", "x@example.com", "always")
    assert not (tmp_path / "none.toml").exists()


def test_a_file_with_crlf_line_ends_keeps_them(tmp_path: Path) -> None:
    text = COMMENTED.replace("\n", "\r\n")
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode())
    change_sender_rule(path, "alerts@example.net", "never")
    change_sender_rule(path, "x@example.com", "always")
    after = path.read_bytes().decode()
    assert "\n" not in after.replace("\r\n", "")
    gone, new = changed_lines(text, after)
    assert gone == []
    assert new == ['    "x@example.com",\r\n', 'never_urgent = ["alerts@example.net"]\r\n']


def test_a_one_line_list_that_grows_long_goes_one_sender_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[triage]\nvip = ["a@b.example"]  # keep\nmodel = "default"\n')
    for i in range(6):
        change_sender_rule(path, f"someone.long{i}@example.com", "always")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[1] == "vip = ["
    assert lines[2:4] == ['    "a@b.example",', '    "someone.long0@example.com",']
    assert lines[9:] == ["]  # keep", 'model = "default"']
    assert all(len(line) <= 100 for line in lines)
    assert len(load_config(path).triage.vip) == 7
