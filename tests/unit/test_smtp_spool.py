"""The SMTP side's spool, in-flight budget, DATA reader and dot-stuffing, with bytes alone."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commsproxy.proxy.smtp.data_reader import DataOutcome, read_data
from commsproxy.proxy.smtp.spool import InFlight, Spool, dot_stuffed


def _fds_in(directory: Path) -> list[str]:
    """Files in ``directory`` this process has open (an unlinked one shows as '(deleted)')."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory)):
            found.append(target)
    return found


def test_small_message_stays_in_memory_and_big_one_goes_to_an_owner_only_unlinked_file(
    tmp_path: Path,
) -> None:
    budget = InFlight(10 << 20)
    with Spool(budget, tmp_path, memory=1000) as small:
        small.write(b"x" * 999)
        assert not small.on_disk
    big = Spool(budget, tmp_path, memory=1000)
    for _ in range(50):
        assert big.write(b"y" * 100)
    assert big.on_disk
    assert list(tmp_path.iterdir()) == []  # unlinked at once: nothing to leave behind
    assert big._file is not None
    assert stat.S_IMODE(os.fstat(big._file.fileno()).st_mode) == 0o600
    assert big.read_all() == b"y" * 5000
    assert budget.used == 5000
    big.close()
    assert budget.used == 0
    assert _fds_in(tmp_path) == []


def test_the_cap_refuses_what_goes_over_and_gives_everything_back() -> None:
    budget = InFlight(1000)
    first = Spool(budget)
    assert first.write(b"a" * 600)
    second = Spool(budget)
    assert second.write(b"b" * 300)
    assert not second.write(b"b" * 200)  # 1100 > 1000
    assert second.refused
    assert not second.write(b"b")  # once refused, refused
    assert budget.used == 900
    first.close()
    second.close()
    assert budget.used == 0
    assert budget.peak == 900
    third = Spool(budget)
    assert third.write(b"c" * 1000)  # after the others, the whole cap is free again


def _unstuff(data: bytes) -> bytes:
    lines = data.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@given(
    st.lists(st.sampled_from([b".", b"..", b"\r\n", b"\r", b"\n", b"a", b".\r\n", b"\r\n."])),
    st.integers(min_value=1, max_value=7),
)
def test_dot_stuffing_across_block_boundaries_matches_stuffing_the_whole(
    parts: list[bytes], size: int
) -> None:
    content = b"".join(parts)
    blocks = [content[i : i + size] for i in range(0, len(content), size)]
    whole = b"\r\n" + content
    expected = whole.replace(b"\r\n.", b"\r\n..")[2:]
    stuffed = b"".join(dot_stuffed(blocks))
    assert stuffed == expected
    assert _unstuff(stuffed) == content


async def _read(
    wire: bytes, *, cap: int = 1 << 20, size_limit: int | None = None
) -> tuple[DataOutcome, bytes, asyncio.StreamReader]:
    reader = asyncio.StreamReader(limit=1001)
    reader.feed_data(wire)
    reader.feed_eof()
    with Spool(InFlight(cap)) as spool:
        outcome = await read_data(reader, spool, size_limit=size_limit, line_limit=1001)
        return outcome, spool.read_all(), reader


async def test_data_is_unstuffed_into_the_spool_and_reading_stops_at_the_dot() -> None:
    outcome, content, reader = await _read(b"Subject: x\r\n\r\n..dot\r\nend\r\n.\r\nQUIT\r\n")
    assert outcome is DataOutcome.COMPLETE
    assert content == b"Subject: x\r\n\r\n.dot\r\nend\r\n"
    assert await reader.read() == b"QUIT\r\n"  # the next command is left for the session


async def test_a_bare_line_break_dot_cannot_end_the_data_upstream() -> None:
    smuggled = b"Subject: x\r\n\r\nhi\n.\nMAIL FROM:<evil@example.com>\r\nbare\r.\rend\r\n.\r\n"
    outcome, content, reader = await _read(smuggled + b"QUIT\r\n")
    assert outcome is DataOutcome.COMPLETE
    assert content == (
        b"Subject: x\r\n\r\nhi\r\n.\r\nMAIL FROM:<evil@example.com>\r\nbare\r\n.\r\nend\r\n"
    )
    sent = b"".join(dot_stuffed([content]))
    assert b"\r\n..\r\nMAIL FROM" in sent  # the dot is doubled: the upstream reads text
    assert b"\n.\n" not in sent
    assert b"\r.\r" not in sent
    assert await reader.read() == b"QUIT\r\n"


async def test_a_long_line_is_dropped_as_it_comes_and_refused_after_the_dot() -> None:
    outcome, content, reader = await _read(b"a\r\n" + b"x" * 100_000 + b"\r\nb\r\n.\r\nNOOP\r\n")
    assert outcome is DataOutcome.LINE_TOO_LONG
    assert outcome.reply.startswith("500 5.5.6 ")
    assert content == b"a\r\n"  # nothing after the refusal is kept
    assert await reader.read() == b"NOOP\r\n"


async def test_over_the_size_limit_and_over_the_cap_are_told_apart() -> None:
    body = b"".join(b"line %d\r\n" % i for i in range(1000))
    too_big, _, _ = await _read(body + b".\r\n", size_limit=5000)
    assert too_big is DataOutcome.TOO_BIG
    assert too_big.reply.startswith("552 5.3.4 ")
    over, kept, _ = await _read(body + b".\r\n", cap=5000)
    assert over is DataOutcome.OVER_CAP
    assert over.reply.startswith("452 4.3.1 ")
    assert len(kept) <= 5000


@pytest.mark.parametrize("outcome", list(DataOutcome))
def test_every_reply_is_smtp_with_an_enhanced_code(outcome: DataOutcome) -> None:
    code, enhanced, text = outcome.reply.split(" ", 2)
    assert code.isdigit()
    assert enhanced[0] == code[0]
    assert enhanced.count(".") == 2
    assert "Error" not in text
