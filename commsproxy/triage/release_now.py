"""``commsproxy release --now``: release held mail at once, through ``run`` or without it.

The request is queued in the state file first, so it is never lost. A running ``run`` (it holds
the run lock) serves queued requests itself; this side then waits for the request to be marked
done and counts what the releases it made moved. Without a ``run``, the release is carried out
here, over the login's own connection, and the request is marked done only when it succeeded:
a request that fails or times out stays queued for the next ``run``.

Time is a parameter (``wait``, ``poll``, ``sleep``, ``monotonic``, ``clock``), so tests
neither sleep nor depend on the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from ..config import BatchConfig, Config
from .runlock import running_pid
from .state_store import StateStore, StoreError

__all__ = [
    "POLL_SECONDS",
    "WAIT_SECONDS",
    "DirectRelease",
    "ReleaseNowError",
    "Released",
    "direct_release",
    "release_now",
    "release_now_async",
]

#: Releases without a running ``run``: ``(config, login, batch)``, None meaning all, to
#: ``{batch name: messages released}``.
DirectRelease = Callable[[Config, str | None, str | None], Awaitable[dict[str, int]]]

#: How long to wait for a running ``run`` to carry out the request, and how often to look.
#: ``run`` checks for requests often; a minute covers a release of a big batch.
WAIT_SECONDS = 60.0
POLL_SECONDS = 0.2


class ReleaseNowError(Exception):
    """The release did not happen (yet); the message says why and what becomes of it."""


@dataclass(frozen=True)
class Released:
    request: int  # the queued request's id
    by: Literal["run", "direct"]
    released: dict[str, int]  # messages moved back to INBOX per batch


def direct_release() -> DirectRelease | None:
    """The release without ``run``, or None when this install cannot talk to the server."""
    try:
        # Imported here: it needs the IMAP client, which queuing a request for ``run`` does not.
        from .release import release_without_run
    except ImportError:
        return None
    return release_without_run


def _utcnow() -> datetime:
    return datetime.now(UTC)


def release_now(
    config: Config,
    login: str | None,
    batch: str | None,
    *,
    state_dir: Path | None = None,
    on_waiting: Callable[[str], None] = lambda who: None,
    direct: Callable[[], DirectRelease | None] = direct_release,
    wait: float | None = None,
    poll: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    clock: Callable[[], datetime] = _utcnow,
) -> Released:
    """Release ``batch`` (None: every batch) for ``login`` (None: every login) now.

    ``state_dir`` overrides the config's. ``on_waiting`` hears who was asked (e.g.
    ``commsproxy run (pid 42)``) before the wait starts. ``wait`` and ``poll`` default to
    ``WAIT_SECONDS`` and ``POLL_SECONDS``. Raises ``ReleaseNowError`` when nothing was
    released, saying whether the request stays queued, and when ``run`` marked the request
    done without finishing a release of every batch asked for (one failed).
    For a command line; on an event loop, ``release_now_async`` does the same.
    """

    async def slept(seconds: float) -> None:
        sleep(seconds)

    return asyncio.run(
        release_now_async(
            config, login, batch, state_dir=state_dir, on_waiting=on_waiting, direct=direct,
            wait=wait, poll=poll, sleep=slept, monotonic=monotonic, clock=clock,
        )
    )  # fmt: skip


async def release_now_async(
    config: Config,
    login: str | None,
    batch: str | None,
    *,
    state_dir: Path | None = None,
    on_waiting: Callable[[str], None] = lambda who: None,
    direct: Callable[[], DirectRelease | None] = direct_release,
    wait: float | None = None,
    poll: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    clock: Callable[[], datetime] = _utcnow,
) -> Released:
    """``release_now`` without blocking the event loop it runs on (the local page in ``run``:
    the loop that serves the request must keep running while this waits for it)."""
    wait = WAIT_SECONDS if wait is None else wait
    poll = POLL_SECONDS if poll is None else poll
    directory = (state_dir or config.proxy.state_dir).expanduser()
    targets = [b for b in config.batches if batch in (None, b.name)]
    requested = clock()
    try:
        with StateStore.open(directory) as store:
            request_id = store.request_release(login, batch, requested)
            pid = running_pid(directory)
            if pid is not None:
                who = f"commsproxy run (pid {pid})" if pid else "commsproxy run"
                on_waiting(who)
                if not await _wait_for(store, request_id, wait, poll, sleep, monotonic):
                    raise ReleaseNowError(
                        f"{who} has not finished the release within {wait:g} s; "
                        "the request stays queued and it will release when it gets to it"
                    )
                logins = [login] if login else [c.username for c in config.logins if c.username]
                left = _not_released(store, logins, targets, requested)
                if left:
                    # run marks a request done even when a release of it failed (a cut link).
                    raise ReleaseNowError(
                        f"{who} did not finish releasing {', '.join(left)} (its log says why); "
                        "mail may still be held there: ask again with `commsproxy release --now`"
                    )
                moved = _released_since(store, login, targets, requested)
                return Released(request_id, "run", moved)
            function = direct()
            if function is None:
                raise ReleaseNowError(
                    "commsproxy run is not running and this commsproxy cannot release by "
                    "itself; the request stays queued: start `commsproxy run` and it will "
                    "release at once"
                )
            if state_dir is not None:
                config = dataclasses.replace(
                    config, proxy=dataclasses.replace(config.proxy, state_dir=directory)
                )
            try:
                moved = await function(config, login, batch)
            except Exception as err:  # whatever went wrong, the request must stay queued
                raise ReleaseNowError(
                    f"release failed: {err}; the request stays queued for `commsproxy run`"
                ) from None
            store.complete_release_request(request_id, clock())
            return Released(request_id, "direct", moved)
    except StoreError as err:
        raise ReleaseNowError(str(err)) from None


async def _wait_for(
    store: StateStore,
    request_id: int,
    wait: float,
    poll: float,
    sleep: Callable[[float], Awaitable[None]],
    monotonic: Callable[[], float],
) -> bool:
    """Whether ``run`` marked the request done within ``wait`` seconds."""
    deadline = monotonic() + wait
    while True:
        if all(request.id != request_id for request in store.pending_release_requests()):
            return True
        if monotonic() >= deadline:
            return False
        await sleep(poll)


def _not_released(
    store: StateStore, logins: Sequence[str], batches: Sequence[BatchConfig], since: datetime
) -> list[str]:
    """``login/batch`` of each asked-for release with no finished release started since."""
    done = {
        (release.login, release.batch)
        for release in store.recent_releases(None, 10_000)
        if release.started >= since and release.finished is not None
    }
    return [
        f"{login}/{batch.name}" if len(logins) > 1 else batch.name
        for login in logins
        for batch in batches
        if (login, batch.name) not in done
    ]


def _released_since(
    store: StateStore, login: str | None, batches: Sequence[BatchConfig], since: datetime
) -> dict[str, int]:
    """Messages moved per batch by releases started at or after ``since``."""
    moved = {batch.name: 0 for batch in batches}
    limit = 50
    while True:
        releases = store.recent_releases(login, limit)
        for release in releases:
            if release.started >= since and release.batch in moved:
                moved[release.batch] += release.moved
        if len(releases) < limit or releases[-1].started < since:
            return moved
        moved = dict.fromkeys(moved, 0)
        limit *= 4
