"""service.plan: config merged with `commsproxy run` options; errors name the flag or key."""

from __future__ import annotations

from pathlib import Path

import pytest

from commsproxy.config import Config, ConfigError, load_config
from commsproxy.endpoints import ListenAddress, Security
from commsproxy.service import RunOptions, plan

UPSTREAM = "imaps://imap.example.com"


def config_from(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, required=True)


FULL = """\
[proxy]
imap = "127.0.0.1:2143"
smtp = "127.0.0.1:2587"
max_connections = 7
max_literal = "1M"
max_message_size = "2M"
smtp_max_in_flight = "8M"

[[login]]
upstream_imap = "imaps://imap.example.com"
upstream_smtp = "smtps://smtp.example.com"
"""


def test_config_alone(tmp_path: Path) -> None:
    the_plan = plan(config_from(tmp_path, FULL), RunOptions())
    assert str(the_plan.imap.upstream) == "imap.example.com:993"
    assert the_plan.imap.listen == ListenAddress("127.0.0.1", 2143)
    assert the_plan.imap.max_connections == 7
    assert the_plan.imap.limits.max_literal == 1 << 20
    assert the_plan.imap.local_tls is None
    assert the_plan.imap.tls_listen is None
    assert the_plan.smtp is not None
    assert str(the_plan.smtp.upstream) == "smtp.example.com:465"
    assert the_plan.smtp.listen == ListenAddress("127.0.0.1", 2587)
    assert the_plan.smtp.size_limit == 2 << 20
    assert the_plan.smtp.max_in_flight == 8 << 20


def test_command_line_overrides_config(tmp_path: Path) -> None:
    options = RunOptions(
        upstream="imap+starttls://other.example.com:1143",
        smtp_upstream="smtp+starttls://smtp.other.example.com",
        listen="[::1]:3143",
        smtp_listen="127.0.0.1:3587",
    )
    the_plan = plan(config_from(tmp_path, FULL), options)
    assert str(the_plan.imap.upstream) == "other.example.com:1143"
    assert the_plan.imap.upstream.security is Security.STARTTLS
    assert the_plan.imap.listen == ListenAddress("::1", 3143)
    assert the_plan.smtp is not None
    assert str(the_plan.smtp.upstream) == "smtp.other.example.com:587"
    assert the_plan.smtp.listen == ListenAddress("127.0.0.1", 3587)


def test_upstream_on_the_command_line_needs_no_config() -> None:
    the_plan = plan(Config(), RunOptions(upstream=UPSTREAM))
    assert str(the_plan.imap.upstream) == "imap.example.com:993"
    assert the_plan.imap.listen == ListenAddress("127.0.0.1", 1143)


def test_smtp_relay_off_without_smtp_upstream(tmp_path: Path) -> None:
    assert plan(Config(), RunOptions(upstream=UPSTREAM)).smtp is None
    text = '[[login]]\nupstream_imap = "imaps://imap.example.com"\n'
    assert plan(config_from(tmp_path, text), RunOptions()).smtp is None


def test_smtp_upstream_on_the_command_line_turns_the_relay_on() -> None:
    options = RunOptions(upstream=UPSTREAM, smtp_upstream="smtp+starttls://smtp.example.com")
    the_plan = plan(Config(), options)
    assert the_plan.smtp is not None
    assert the_plan.smtp.listen == ListenAddress("127.0.0.1", 1587)


FLAG_ERRORS = [
    (RunOptions(), "--upstream", "no upstream IMAP server"),
    (RunOptions(upstream="http://imap.example.com"), "--upstream", "expected a URL"),
    (RunOptions(upstream="imap://imap.example.com"), "--upstream", "--allow-insecure"),
    (
        RunOptions(upstream=UPSTREAM, smtp_upstream="smtp://smtp.example.com"),
        "--smtp-upstream",
        "--allow-insecure",
    ),
    (RunOptions(upstream=UPSTREAM, listen="1143"), "--listen", "expected HOST:PORT"),
    (RunOptions(upstream=UPSTREAM, listen="127.0.0.1:99999"), "--listen", "expected HOST:PORT"),
    (
        RunOptions(upstream=UPSTREAM, smtp_upstream="smtps://smtp.example.com", smtp_listen="nope"),
        "--smtp-listen",
        "expected HOST:PORT",
    ),
    (RunOptions(upstream=UPSTREAM, tls_key=Path("/any/key.pem")), "--tls-key", "--tls-cert"),
    (
        RunOptions(upstream=UPSTREAM, cafile=Path("/nonexistent/ca.pem")),
        "--cafile",
        "/nonexistent/ca.pem",
    ),
    (
        RunOptions(upstream=UPSTREAM, tls_cert=Path("/nonexistent/cert.pem")),
        "--tls-cert",
        "/nonexistent/cert.pem",
    ),
]


@pytest.mark.parametrize(
    ("options", "flag", "expectation"),
    FLAG_ERRORS,
    ids=[f"{flag} {expectation}" for _, flag, expectation in FLAG_ERRORS],
)
def test_errors_name_the_flag(options: RunOptions, flag: str, expectation: str) -> None:
    with pytest.raises(ConfigError) as info:
        plan(Config(), options)
    assert info.value.key == flag
    assert str(info.value).startswith(f"{flag}: ")
    assert expectation in str(info.value)


def test_allow_insecure_permits_plain_upstreams() -> None:
    options = RunOptions(
        upstream="imap://imap.example.com",
        smtp_upstream="smtp://smtp.example.com",
        allow_insecure=True,
    )
    the_plan = plan(Config(), options)
    assert the_plan.imap.upstream.security is Security.PLAIN
    assert the_plan.smtp is not None
    assert the_plan.smtp.upstream.security is Security.PLAIN


def test_allow_insecure_in_the_login_table_covers_the_command_line(tmp_path: Path) -> None:
    text = '[[login]]\nupstream_imap = "imap://imap.example.com"\nallow_insecure = true\n'
    options = RunOptions(upstream="imap://other.example.com")
    assert plan(config_from(tmp_path, text), options).imap.upstream.host == "other.example.com"


def test_tls_cert_and_key(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    the_plan = plan(Config(), RunOptions(upstream=UPSTREAM, tls_cert=cert, tls_key=key))
    assert the_plan.imap.local_tls is not None
    assert the_plan.imap.tls_listen == ListenAddress("127.0.0.1", 1993)


def test_tls_listen_override(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    options = RunOptions(upstream=UPSTREAM, tls_cert=cert, tls_key=key, tls_listen="[::1]:2993")
    the_plan = plan(Config(), options)
    assert the_plan.imap.tls_listen == ListenAddress("::1", 2993)


def test_bad_tls_listen_names_the_flag(pem: tuple[Path, Path]) -> None:
    cert, key = pem
    options = RunOptions(upstream=UPSTREAM, tls_cert=cert, tls_key=key, tls_listen="2993")
    with pytest.raises(ConfigError, match=r"^--tls-listen: "):
        plan(Config(), options)


def test_tls_from_config_reaches_smtp_too(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, key = pem
    text = f'[proxy]\ntls_cert = "{cert}"\ntls_key = "{key}"\nimaps = "127.0.0.1:2993"\n'
    options = RunOptions(upstream=UPSTREAM, smtp_upstream="smtps://smtp.example.com")
    the_plan = plan(config_from(tmp_path, text), options)
    assert the_plan.imap.local_tls is not None
    assert the_plan.imap.tls_listen == ListenAddress("127.0.0.1", 2993)
    assert the_plan.smtp is not None
    assert the_plan.smtp.local_tls is the_plan.imap.local_tls


def test_a_key_that_is_no_certificate_names_tls_cert(pem: tuple[Path, Path]) -> None:
    _, key = pem
    with pytest.raises(ConfigError, match=r"^--tls-cert: cannot load"):
        plan(Config(), RunOptions(upstream=UPSTREAM, tls_cert=key))


def test_cafile_is_loaded(pem: tuple[Path, Path]) -> None:
    cert, _ = pem
    without = plan(Config(), RunOptions(upstream=UPSTREAM)).imap.upstream_tls
    with_ca = plan(Config(), RunOptions(upstream=UPSTREAM, cafile=cert)).imap.upstream_tls
    assert with_ca.cert_store_stats()["x509"] == without.cert_store_stats()["x509"] + 1


def test_several_logins_with_different_upstreams(tmp_path: Path, pem: tuple[Path, Path]) -> None:
    cert, _ = pem
    text = (
        '[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "Me@A.example"\n'
        'upstream_smtp = "smtps://smtp.a.example.com"\n\n'
        f'[[login]]\nupstream_imap = "imaps://b.example.com:1993"\nusername = "me@b.example"\n'
        f'cafile = "{cert}"\n'
    )
    the_plan = plan(config_from(tmp_path, text), RunOptions())
    routes = the_plan.imap.routes
    assert routes is not None
    a, b = routes.server_for(" me@a.EXAMPLE "), routes.server_for("me@b.example")
    assert a is not None
    assert b is not None
    assert (str(a.endpoint), str(b.endpoint)) == ("a.example.com:993", "b.example.com:1993")
    assert b.tls.cert_store_stats()["x509"] == a.tls.cert_store_stats()["x509"] + 1
    assert routes.server_for("someone@else.example") is None
    assert the_plan.smtp is not None
    assert the_plan.smtp.routes is not None
    smtp = the_plan.smtp.routes
    assert str(smtp.servers["me@a.example"].endpoint) == "smtp.a.example.com:465"
    assert smtp.server_for("me@b.example") is None  # that login has no SMTP server
    assert the_plan.triage is not None
    engines = {route.key: str(server.endpoint) for route, server in the_plan.triage.routes}
    assert engines == {"Me@A.example": "a.example.com:993", "me@b.example": "b.example.com:1993"}


def test_one_login_connects_before_login(tmp_path: Path) -> None:
    the_plan = plan(config_from(tmp_path, FULL), RunOptions())
    assert the_plan.imap.routes is None
    assert the_plan.smtp is not None
    assert the_plan.smtp.routes is None


def test_several_logins_with_the_same_upstream(tmp_path: Path) -> None:
    text = (
        '[[login]]\nupstream_imap = "imaps://a.example.com"\nusername = "x"\n\n'
        '[[login]]\nupstream_imap = "imaps://a.example.com:993"\nusername = "y"\n'
    )
    the_plan = plan(config_from(tmp_path, text), RunOptions())
    assert str(the_plan.imap.upstream) == "a.example.com:993"
