"""How many client connections the IMAP listener takes: sized from the open-file limit.

Every client connection holds two descriptors, its own socket and its upstream's. The process
needs more beside them: the listening sockets, triage's own connections for each login, the
log file, the state store (SQLite with its WAL), SMTP sessions and what Python itself opens;
``RESERVE`` keeps that many free. A process that runs out of descriptors fails in odd places
(accept, a triage reconnect, a log rotation), so the listener refuses the connection instead.

At start the soft limit is raised to the hard limit where the system allows it (a user's soft
limit is often 1024 while the hard one is far higher). Without ``max_connections`` in the config
the limit alone decides; a configured value above what it allows is lowered, with a warning.
"""

from __future__ import annotations

from dataclasses import dataclass

try:
    import resource
except ImportError:  # Windows: no RLIMIT_NOFILE to read
    resource = None  # type: ignore[assignment]

__all__ = ["PER_CONNECTION", "RESERVE", "ConnectionLimit", "connection_limit", "raise_open_files"]

PER_CONNECTION = 2  # the client's socket and its upstream's
RESERVE = 128  # descriptors kept for everything else the process opens
UNKNOWN_LIMIT = 1000  # where the open-file limit cannot be read (or is unlimited)
_TRY_SOFT = (1 << 20, 10240)  # if "unlimited" is refused: Linux's nr_open, macOS's OPEN_MAX


@dataclass(frozen=True, slots=True)
class ConnectionLimit:
    value: int  # client connections taken at once
    open_files: int | None  # the soft limit it was sized from (None: not known)
    lowered_from: int | None = None  # the configured value, when the limit did not allow it

    def warning(self) -> str | None:
        """Why a configured value was lowered, for the log; None when it was not."""
        if self.lowered_from is None:
            return None
        return (
            f"[proxy] max_connections = {self.lowered_from} needs more open files than this "
            f"process may have (limit {self.open_files}: {PER_CONNECTION} per connection and "
            f"{RESERVE} for upstream logins, triage, logs and the state store); taking "
            f"{self.value} connections. Raise the limit (ulimit -n, LimitNOFILE=) to take more."
        )


def connection_limit(configured: int | None, open_files: int | None) -> ConnectionLimit:
    """The connections to take with ``open_files`` descriptors allowed (None: unknown)."""
    if open_files is None:
        return ConnectionLimit(configured or UNKNOWN_LIMIT, None)
    allowed = max(1, (open_files - RESERVE) // PER_CONNECTION)
    if configured is None:
        return ConnectionLimit(allowed, open_files)
    if configured > allowed:
        return ConnectionLimit(allowed, open_files, configured)
    return ConnectionLimit(configured, open_files)


def raise_open_files() -> int | None:
    """Raise the soft RLIMIT_NOFILE as far as the hard limit allows; the soft limit now, or
    None when there is none to read or it is unlimited."""
    if resource is None:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    candidates = [hard, *_TRY_SOFT] if hard == resource.RLIM_INFINITY else [hard]
    for wanted in candidates:
        if soft != resource.RLIM_INFINITY and (wanted == resource.RLIM_INFINITY or wanted > soft):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            except (ValueError, OSError):
                continue
            break
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft
