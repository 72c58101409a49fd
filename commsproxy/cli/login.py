"""``commsproxy login``: sign an OAuth2 login in and set the local password for the mail program."""

from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from ..config import ConfigError, load_config, oauth_login_named
from ..oauth import (
    DeviceCode,
    OAuthError,
    ProviderError,
    mailbox_identity,
    save_sign_in,
    sign_in_with_browser,
    sign_in_with_device,
)
from .common import config_option, main


@main.command()
@config_option
@click.argument("username", required=False)
@click.option(
    "--device",
    is_flag=True,
    help="Sign in on another device with a code (for a machine without a browser).",
)
@click.option("--no-browser", is_flag=True, help="Only print the sign-in URL; open nothing.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=10),
    default=300,
    show_default=True,
    help="Seconds to wait for the browser sign-in.",
)
def login(
    config_path: Path | None,
    username: str | None,
    device: bool,
    no_browser: bool,
    timeout: float,
) -> None:
    """Sign in to Microsoft 365, Gmail or another OAuth2 provider, and set the local password.

    USERNAME is the [[login]]'s username (needed only with several OAuth2 logins). The browser
    opens at the provider's sign-in page, and the URL is printed too; the provider sends the
    browser back to commsproxy on 127.0.0.1. Then you choose the local password: your mail
    program logs in to commsproxy with it. The refresh token goes to the OS keyring, or, where
    none works, to a file encrypted with the local password. Run it again whenever commsproxy
    says sign-in is needed.

    \b
    Example:
        commsproxy login
        commsproxy login me@example.com --device
        commsproxy login me@example.com/shared@example.com
    """
    try:
        config = load_config(config_path, required=config_path is not None)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    try:
        chosen = oauth_login_named(config.logins, username)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="USERNAME") from None
    provider, name = chosen.oauth, chosen.username
    # The config refuses an OAuth2 login without a username.
    assert provider is not None
    assert name is not None
    identity = mailbox_identity(name, provider.name)

    def show_url(url: str) -> None:
        click.echo(f"Sign in as {identity.sign_in} at:\n\n  {url}\n")
        if not no_browser:
            webbrowser.open(url)
        click.echo("Waiting for the browser to come back to commsproxy ...")

    def show_code(code: DeviceCode) -> None:
        where = code.verification_uri_complete or code.verification_uri
        click.echo(f"On any device, open {where} and enter the code {code.user_code}")
        click.echo(f"(sign in as {identity.sign_in}; the code works for {code.expires_in:.0f} s)")

    try:
        if device:
            tokens = sign_in_with_device(provider, login=identity.account, show_code=show_code)
        else:
            tokens = sign_in_with_browser(
                provider,
                login=identity.account,
                show_url=show_url,
                login_hint=identity.sign_in,
                timeout=timeout,
            )
    except ProviderError as err:
        if device and provider.name == "gmail" and err.error == "invalid_scope":
            raise click.ClickException(
                "Google does not allow mail access through its device sign-in; "
                "run `commsproxy login` without --device on a machine with a browser"
            ) from None
        raise click.ClickException(str(err)) from None
    except OAuthError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"Signed in as {identity.sign_in}.")
    password = click.prompt(
        "Local password for your mail program",
        hide_input=True,
        confirmation_prompt="Repeat it",
    )
    try:
        where = save_sign_in(name, provider, tokens, password)
    except OAuthError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"The refresh token is kept in {where}; the local password only as a hash.")
    click.echo(f"In your mail program: user name {name}, password: the local password.")
