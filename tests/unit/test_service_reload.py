"""Reloading the config while running: what changed, what needs a restart, broken edits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from commsproxy.config import Config, load_config
from commsproxy.reload import Changes, ConfigWatch, changes

BASE = """
[proxy]
imap = "127.0.0.1:1143"

[[login]]
username = "me@example.com"
upstream_imap = "imaps://imap.example.com"

[triage]
vip = ["boss@example.com"]

[[batch]]
name = "later"
mailbox = "Later"
labels = ["normal", "bulk"]
release = ["08:30"]
"""


def config(tmp_path: Path, text: str, name: str = "config.toml") -> Config:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_config(path, required=True)


def edited(tmp_path: Path, old: str, new: str) -> Config:
    assert old in BASE
    return config(tmp_path, BASE.replace(old, new), "edited.toml")


def test_nothing_changed(tmp_path: Path) -> None:
    assert not changes(config(tmp_path, BASE), config(tmp_path, BASE, "same.toml"))


def test_vips_batches_and_accounts_take_effect_live(tmp_path: Path) -> None:
    base = config(tmp_path, BASE)
    vip = changes(base, edited(tmp_path, '["boss@example.com"]', '["*@big.example"]'))
    assert vip == Changes(vip=True)
    assert vip.live == ("[triage] vip",)
    batch = changes(base, edited(tmp_path, '["08:30"]', '["09:00"]'))
    assert batch == Changes(engines=("[[batch]]",))
    accounts = changes(
        base, config(tmp_path, BASE + '[accounts.acme]\ndomains = ["acme.com"]\n', "acc.toml")
    )
    assert accounts == Changes(engines=("[accounts]",))


def test_listeners_and_logins_need_a_restart(tmp_path: Path) -> None:
    base = config(tmp_path, BASE)
    listen = changes(base, edited(tmp_path, "127.0.0.1:1143", "127.0.0.1:2143"))
    assert listen.restart == ("[proxy] imap",)
    assert not listen.live
    login = changes(base, edited(tmp_path, "imap.example.com", "mail.example.com"))
    assert login.restart == ("[[login]]",)
    gate = changes(base, edited(tmp_path, "[triage]\n", "[triage]\ngate_timeout = 9\n"))
    assert gate.restart == ("[triage] gate_timeout",)
    page = changes(base, edited(tmp_path, "[triage]\n", "[web]\nport = 1181\n[triage]\n"))
    assert page.restart == ("[web] port",)


class Applied:
    def __init__(self) -> None:
        self.seen: list[tuple[Config, Changes]] = []

    async def __call__(self, new: Config, changed: Changes) -> None:
        self.seen.append((new, changed))


async def wait_for(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_a_changed_file_is_applied_and_a_broken_one_is_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "commsproxy")
    first = config(tmp_path, BASE)
    applied = Applied()
    watch = ConfigWatch(first, applied, interval=0.02)
    stop = asyncio.Event()
    task = asyncio.create_task(watch.run(stop))
    try:
        assert first.path is not None
        first.path.write_text(BASE.replace("boss@", "chief@"), encoding="utf-8")
        await wait_for(lambda: len(applied.seen) == 1)
        assert applied.seen[0][0].triage.vip == ("chief@example.com",)
        assert watch.current.triage.vip == ("chief@example.com",)
        assert "config reloaded: [triage] vip in force now" in caplog.text

        first.path.write_text(BASE.replace("vip = [", "vip = 3 #["), encoding="utf-8")
        await wait_for(lambda: "config not reloaded" in caplog.text)
        assert f"{first.path}:" in caplog.text
        assert "[triage] vip" in caplog.text
        assert watch.current.triage.vip == ("chief@example.com",)  # the last good one stays
        assert len(applied.seen) == 1

        # A poke (SIGHUP) reloads an unchanged file too; a fixed file is applied.
        first.path.write_text(BASE, encoding="utf-8")
        watch.poke()
        await wait_for(lambda: len(applied.seen) == 2)
        assert watch.current.triage.vip == ("boss@example.com",)
    finally:
        stop.set()
        watch.poke()
        await task


async def test_a_restart_only_change_is_said_and_not_applied_live(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = config(tmp_path, BASE)
    applied = Applied()
    watch = ConfigWatch(first, applied, interval=60)
    assert first.path is not None
    first.path.write_text(BASE.replace("1143", "2143"), encoding="utf-8")
    assert await watch.reload()
    assert "restart needed for [proxy] imap" in caplog.text
    assert applied.seen[0][1].restart == ("[proxy] imap",)
