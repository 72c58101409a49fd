"""``commsproxy open``: the local page of the running ``commsproxy run``, in the browser."""

from __future__ import annotations

import socket
import webbrowser
from pathlib import Path

import click

from ..triage.runlock import running_pid
from ..web.access import load_or_create_secret
from .common import config_option, main
from .triage import _config, _state_dir, state_dir_option


def page_answers(port: int, timeout: float = 1.0) -> bool:
    """Something listens on 127.0.0.1:``port`` (the page, when run is up)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


@main.command("open")
@config_option
@state_dir_option
@click.option(
    "--print",
    "print_only",
    is_flag=True,
    help="Only print the page's address (with its key); do not start a browser.",
)
def open_command(config_path: Path | None, state_dir: Path | None, print_only: bool) -> None:
    """Open the local page of the running `commsproxy run` in your browser.

    The page shows what is held now and when it comes, the day in a picture, your customer
    accounts and the model, with buttons to deliver a message now, make a sender always or
    never urgent, release a batch, or pause holding. It listens on 127.0.0.1 only ([web]
    port, 1180 by default); the address carries a key kept in the state directory that only
    you can read, and the page refuses anyone without it.

    \b
    Example:
        commsproxy open
        commsproxy open --print      # just print the address, e.g. for another browser
    """
    config = _config(config_path)
    where = f" in {config.path}" if config.path else ""
    if not config.web.enabled:
        raise click.ClickException(
            f"the local page is off ([web] enabled = false{where}); set it to true and restart "
            "`commsproxy run`"
        )
    directory = _state_dir(config, state_dir)
    port = config.web.port
    pid = running_pid(directory)
    if pid is None:
        raise click.ClickException(
            f"`commsproxy run` is not running for the state directory {directory} "
            "(--state-dir, [proxy] state_dir); the page is served by it: start it, then "
            "`commsproxy open` again"
        )
    if not page_answers(port):
        raise click.ClickException(
            f"`commsproxy run` runs (pid {pid}) but nothing answers on 127.0.0.1:{port} "
            f"([web] port{where}): its log says why (another program on that port?), or it "
            "runs with --no-triage, which has no page"
        )
    try:
        secret = load_or_create_secret(directory)
    except OSError as err:
        raise click.ClickException(f"cannot read the page's key in {directory}: {err}") from None
    url = f"http://127.0.0.1:{port}/?key={secret}"
    click.echo(url)
    if not print_only and not webbrowser.open(url):
        click.echo("no browser could be started: open the address above yourself", err=True)
