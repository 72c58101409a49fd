"""Passwords for background work: from ``password_command`` (mbsync's PassCmd), never stored.

The command's output is the password (its first line); it lives in memory only, and neither
the output nor the command's error text is ever logged. A password command may take seconds (a
keyring or a hardware key asking for a touch), so async code awaits ``password_from_command``,
which runs it in a worker thread and leaves the event loop serving everyone else meanwhile.
"""

from __future__ import annotations

import asyncio
import subprocess

__all__ = ["CredentialError", "password_from_command", "run_password_command"]


class CredentialError(RuntimeError):
    """The password command failed; the message names it but never contains a password."""


def run_password_command(command: str, *, timeout: float = 60.0) -> str:
    try:
        # A shell command line is the documented format (as mbsync's PassCmd).
        result = subprocess.run(  # noqa: S602
            command,
            shell=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise CredentialError(f"password_command {command!r} took over {timeout:g} s") from None
    if result.returncode != 0:
        raise CredentialError(
            f"password_command {command!r} failed with exit status {result.returncode}"
        )
    password = result.stdout.split("\n", 1)[0].rstrip("\r")
    if not password:
        raise CredentialError(f"password_command {command!r} printed nothing")
    return password


async def password_from_command(command: str) -> str:
    """``run_password_command`` for async code: the command runs off the event loop.

    Its own timeout (not an asyncio one) bounds it, so an overdue command is killed rather
    than left running in the thread.
    """
    return await asyncio.to_thread(run_password_command, command)
