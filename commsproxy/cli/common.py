"""What every ``commsproxy`` command shares: the group, the --config option, logging."""

from __future__ import annotations

import logging
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


def setup_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Libraries that log message contents at DEBUG: mail is private, even in a debug log.
    for name in ("mail.log", "aiosmtpd", "aiosmtplib"):
        logging.getLogger(name).setLevel(max(level, logging.INFO))


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
