"""Password commands: their first line is the password, failures say which command, and async
code waits for a slow one without stalling the event loop."""

from __future__ import annotations

import asyncio

import pytest

from commsproxy.credentials import CredentialError, password_from_command, run_password_command


def test_first_line_is_the_password() -> None:
    assert run_password_command("printf 'secret\\nsecond line\\n'") == "secret"


@pytest.mark.parametrize(
    ("command", "message"),
    [("exit 3", "exit status 3"), ("true", "printed nothing")],
)
def test_failures_name_the_command(command: str, message: str) -> None:
    with pytest.raises(CredentialError, match=message) as caught:
        run_password_command(command)
    assert repr(command) in str(caught.value)


def test_slow_password_command_leaves_the_loop_running() -> None:
    async def scenario() -> tuple[str, int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.02)

        task = asyncio.create_task(ticker())
        try:
            password = await password_from_command("sleep 0.5; echo pw")
        finally:
            done.set()
            await task
        return password, ticks

    password, ticks = asyncio.run(scenario())
    assert password == "pw"
    # 0.5 s at one tick per 0.02 s is about 25; a loop blocked by the command manages 1.
    assert ticks >= 10, ticks
