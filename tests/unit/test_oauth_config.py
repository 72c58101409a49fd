"""``[[login]] auth = "oauth2"``: presets, custom providers, errors naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from commsproxy.cli import main
from commsproxy.config import load_config, oauth_login_named
from commsproxy.init import write_initial_config

from .config_files import assert_config_error, error_cases, write

MS = """
[[login]]
auth = "oauth2"
provider = "microsoft365"
username = "ann@contoso.com"
client_id = "11111111-2222-3333-4444-555555555555"
"""


def test_microsoft_preset_fills_servers_and_endpoints(tmp_path: Path) -> None:
    (login,) = load_config(write(tmp_path, MS)).logins
    assert login.upstream_imap.url == "imaps://outlook.office365.com:993"
    assert login.upstream_smtp is not None
    assert login.upstream_smtp.url == "smtp+starttls://smtp.office365.com:587"
    assert login.oauth is not None
    assert login.oauth.tenant == "organizations"
    assert login.oauth.client_id == "11111111-2222-3333-4444-555555555555"
    assert login.password_command is None


def test_tenant_scopes_and_servers_can_be_overridden(tmp_path: Path) -> None:
    text = MS + "\n".join(
        [
            'tenant = "contoso.onmicrosoft.com"',
            'scopes = ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"]',
            'upstream_imap = "imaps://imap.contoso.test"\n',
        ]
    )
    (login,) = load_config(write(tmp_path, text)).logins
    assert login.oauth is not None
    assert "/contoso.onmicrosoft.com/" in login.oauth.token_endpoint
    assert login.oauth.scopes == (
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "offline_access",
    )
    assert login.upstream_imap.host == "imap.contoso.test"


def test_gmail_preset(tmp_path: Path) -> None:
    text = GMAIL + 'client_id = "x.apps.googleusercontent.com"\nclient_secret = "GOCSPX-1"\n'
    (login,) = load_config(write(tmp_path, text)).logins
    assert login.upstream_imap.url == "imaps://imap.gmail.com:993"
    assert login.upstream_smtp is not None
    assert login.upstream_smtp.url == "smtp+starttls://smtp.gmail.com:587"
    assert login.oauth is not None
    assert login.oauth.client_secret == "GOCSPX-1"


def test_custom_provider_on_loopback(tmp_path: Path) -> None:
    text = """[[login]]
auth = "oauth2"
provider = "custom"
username = "user@testbed"
client_id = "commsproxy"
authorization_endpoint = "http://127.0.0.1:9000/authorize"
token_endpoint = "http://127.0.0.1:9000/token"
device_endpoint = "http://127.0.0.1:9000/device"
scopes = ["openid", "offline_access"]
upstream_imap = "imap://127.0.0.1:10143"
"""
    (login,) = load_config(write(tmp_path, text)).logins
    assert login.oauth is not None
    assert login.oauth.device_endpoint == "http://127.0.0.1:9000/device"
    assert login.oauth.scope == "openid offline_access"


def test_password_login_is_unchanged(tmp_path: Path) -> None:
    text = '[[login]]\nupstream_imap = "imaps://imap.example.com"\nauth = "password"\n'
    (login,) = load_config(write(tmp_path, text)).logins
    assert login.oauth is None


CUSTOM = '[[login]]\nauth = "oauth2"\nprovider = "custom"\nusername = "u@x"\nclient_id = "c"\n'
GMAIL = '[[login]]\nauth = "oauth2"\nprovider = "gmail"\nusername = "a@gmail.com"\n'
PASSWORD = '[[login]]\nupstream_imap = "imaps://x.example"\n'
AUTH_URL = 'authorization_endpoint = "https://idp.example/a"\n'
TOKEN_URL = 'token_endpoint = "https://idp.example/t"\n'
SCOPES = 'scopes = ["s"]\n'
MS_NO_ID = MS.replace('client_id = "11111111-2222-3333-4444-555555555555"\n', "")
MS_NO_USER = MS.replace('username = "ann@contoso.com"\n', "")
HEADER = ("[[login]]",)

CASES = [
    ("no-client-id-microsoft", MS_NO_ID, HEADER, "[login] client_id", "Azure portal"),
    ("no-client-id-gmail", GMAIL, HEADER, "[login] client_id", "Google Cloud console"),
    ("no-secret-gmail", GMAIL + 'client_id = "x"\n', HEADER, "[login] client_secret",
     "Credentials"),
    ("no-provider", '[[login]]\nauth = "oauth2"\n', HEADER, "[login] provider",
     '"microsoft365", "gmail" or "custom"'),
    ("bad-provider", '[[login]]\nauth = "oauth2"\nprovider = "yahoo"\n', ("provider",),
     "[login] provider", "'yahoo'"),
    ("bad-auth", PASSWORD + 'auth = "kerberos"\n', ("auth",), "[login] auth",
     '"password" or "oauth2"'),
    ("oauth-key-on-password-login", PASSWORD + 'client_id = "c"\n', ("client_id",),
     "[login] client_id", 'add auth = "oauth2"'),
    ("unknown-key-still-refused", MS + "client_idd = 1\n", ("client_idd",),
     "[login] client_idd", "unknown key"),
    ("no-username", MS_NO_USER, HEADER, "[login] username", "OAuth2 login needs the address"),
    ("password-command", MS + 'password_command = "pass x"\n', ("password_command",),
     "[login] password_command", "token, not a password"),
    ("endpoint-on-preset", MS + TOKEN_URL, ("token_endpoint",), "[login] token_endpoint",
     'only for provider = "custom"'),
    ("tenant-on-gmail", GMAIL + 'client_id = "x"\nclient_secret = "s"\ntenant = "t"\n',
     ("tenant",), "[login] tenant", 'only for provider = "custom"'),
    ("custom-no-token-endpoint", CUSTOM + AUTH_URL + SCOPES, HEADER, "[login] token_endpoint",
     "missing"),
    ("custom-plain-http", CUSTOM + 'authorization_endpoint = "http://idp.example/a"\n'
     + TOKEN_URL + SCOPES, ("authorization_endpoint",), "[login] authorization_endpoint",
     "https://"),
    ("custom-no-scopes", CUSTOM + AUTH_URL + TOKEN_URL, HEADER, "[login] scopes", "missing"),
    ("custom-needs-upstream", CUSTOM + AUTH_URL + TOKEN_URL + SCOPES, HEADER,
     "[login] upstream_imap", "missing"),
    ("empty-scopes", MS + "scopes = []\n", ("scopes",), "[login] scopes", "non-empty"),
]  # fmt: skip


@error_cases(CASES)
def test_errors_name_file_line_and_key(
    tmp_path: Path, text: str, where: tuple[str, ...], label: str, expectation: str
) -> None:
    assert_config_error(tmp_path, text, where, label, expectation)


def test_init_writes_a_login_that_loads(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    write_initial_config(path, provider="microsoft365", username="ann@contoso.com", client_id="cid")
    (login,) = load_config(path, required=True).logins
    assert login.oauth is not None
    assert (login.oauth.name, login.oauth.client_id, login.username) == (
        "microsoft365",
        "cid",
        "ann@contoso.com",
    )
    assert login.upstream_imap.host == "outlook.office365.com"
    gmail = tmp_path / "gmail.toml"
    write_initial_config(
        gmail, provider="gmail", username="a@gmail.com", client_id="g", client_secret="s"
    )
    (login,) = load_config(gmail, required=True).logins
    assert login.oauth is not None
    assert login.upstream_imap.host == "imap.gmail.com"


def test_init_without_client_id_says_where_to_get_one(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    result = CliRunner().invoke(main, ["init", "--config", str(path), "--provider", "microsoft365"])
    assert result.exit_code == 0, result.output
    assert "App registrations" in path.read_text()
    result = CliRunner().invoke(main, ["login", "--config", str(path)])
    assert result.exit_code != 0
    assert "client_id" in result.output
    assert "Azure portal" in result.output


def test_init_provider_refuses_upstream(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "init",
            "--config",
            str(tmp_path / "c.toml"),
            "--provider",
            "gmail",
            "--upstream",
            "imaps://x.example",
        ],
    )
    assert result.exit_code == 2
    assert "--upstream" in result.output


def test_choosing_the_login_to_sign_in(tmp_path: Path) -> None:
    text = (
        MS
        + MS.replace("ann@", "bob@")
        + '[[login]]\nupstream_imap = "imaps://x.example"\nusername = "c"\n'
    )
    logins = load_config(write(tmp_path, text)).logins
    assert oauth_login_named(logins, "BOB@contoso.com").username == "bob@contoso.com"
    with pytest.raises(ValueError, match="several OAuth2 logins"):
        oauth_login_named(logins, None)
    with pytest.raises(ValueError, match="not an OAuth2"):
        oauth_login_named(logins, "c")
    with pytest.raises(ValueError, match="init --provider"):
        oauth_login_named(logins[2:], None)


def test_login_command_with_the_device_grant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI end to end with the flow and storage replaced: prints the code, asks twice."""
    from commsproxy.cli import login as login_cli
    from commsproxy.oauth import DeviceCode, Secret, TokenSet

    path = write(tmp_path, MS)
    saved: list[tuple[str, str]] = []

    def fake_device(provider: object, *, login: str, show_code: object) -> TokenSet:
        show_code(DeviceCode("dc", "ABCD-1234", "https://microsoft.com/devicelogin", 900))  # type: ignore[operator]
        return TokenSet(Secret("AT"), 0.0, Secret("RT"))

    def fake_save(name: str, provider: object, tokens: TokenSet, password: str) -> str:
        saved.append((name, password))
        return "the keyring (test)"

    monkeypatch.setattr(login_cli, "sign_in_with_device", fake_device)
    monkeypatch.setattr(login_cli, "save_sign_in", fake_save)
    result = CliRunner().invoke(
        main, ["login", "--config", str(path), "--device"], input="pw1\npw1\n"
    )
    assert result.exit_code == 0, result.output
    assert "https://microsoft.com/devicelogin" in result.output
    assert "ABCD-1234" in result.output
    assert saved == [("ann@contoso.com", "pw1")]
    assert "pw1" not in result.output
