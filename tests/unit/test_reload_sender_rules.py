"""``[triage] never_urgent`` changes take effect like vip: live, no engine starts over."""

from __future__ import annotations

from pathlib import Path

from commsproxy.config import load_config
from commsproxy.reload import Changes, changes

BASE = """
[[login]]
username = "me@example.com"
upstream_imap = "imaps://imap.example.com"

[triage]
vip = ["boss@example.com"]
"""


def test_never_urgent_is_live_like_vip(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text(BASE, encoding="utf-8")
    new = tmp_path / "new.toml"
    new.write_text(BASE + 'never_urgent = ["*@noisy.example"]\n', encoding="utf-8")
    found = changes(load_config(old, required=True), load_config(new, required=True))
    assert found == Changes(never_urgent=True)
    assert found.live == ("[triage] never_urgent",)
    assert not found.engines
    assert not found.restart


def test_both_lists_at_once(tmp_path: Path) -> None:
    old = tmp_path / "old.toml"
    old.write_text(BASE, encoding="utf-8")
    new = tmp_path / "new.toml"
    text = BASE.replace(
        'vip = ["boss@example.com"]', 'vip = []\nnever_urgent = ["boss@example.com"]'
    )
    new.write_text(text, encoding="utf-8")
    found = changes(load_config(old, required=True), load_config(new, required=True))
    assert found.live == ("[triage] vip", "[triage] never_urgent")
