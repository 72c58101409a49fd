"""What every ``commsproxy`` command shares: the group, the --config option, logging."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .. import __version__
from ..config import default_config_path

F = TypeVar("F", bound=Callable[..., Any])


def config_option(func: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="COMMSPROXY_CONFIG",
        help=f"Config file (default: {default_config_path()}).",
    )(func)


#: A log file is rotated at this size, keeping this many old ones (commsproxy.log.1, ...).
LOG_FILE_BYTES = 5 << 20
LOG_FILE_BACKUPS = 5
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool, quiet: bool, *, log_file: Path | None = None) -> None:
    """Log to the terminal, and to ``log_file`` (rotated) when given, at the same level.

    The file gets exactly the terminal's records: commsproxy never logs a password or token,
    and the libraries that would log message contents are held at INFO below.
    """
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format=_FORMAT, stream=sys.stderr)
    if log_file is not None:
        logging.getLogger().addHandler(_file_handler(log_file))
    # Libraries that log message contents at DEBUG: mail is private, even in a debug log.
    for name in ("mail.log", "aiosmtpd", "aiosmtplib"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))


def _file_handler(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)  # owner-only: it names senders' mailboxes and times
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter(_FORMAT))
    return handler


@click.group()
@click.version_option(__version__, prog_name="commsproxy")
def main() -> None:
    """commsproxy: a local IMAP/SMTP proxy for people who drown in mail.

    Point your mail client at 127.0.0.1 and commsproxy relays it to your real server.

    \b
    Example:
        commsproxy init --upstream imaps://imap.example.com
        commsproxy run
    """
