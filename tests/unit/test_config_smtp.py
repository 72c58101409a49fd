"""``[proxy] smtp_max_in_flight``: the cap on outgoing mail in flight at once."""

from __future__ import annotations

from pathlib import Path

from commsproxy.config import load_config

from .config_files import assert_config_error, error_cases, write


def test_default_is_200M_and_a_size_is_read(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).proxy.smtp_max_in_flight == 200 << 20
    config = load_config(write(tmp_path, '[proxy]\nsmtp_max_in_flight = "1G"\n'))
    assert config.proxy.smtp_max_in_flight == 1 << 30


@error_cases([
    (
        "not a size",
        '[proxy]\nsmtp_max_in_flight = "lots"\n',
        ("smtp_max_in_flight", 1),
        "[proxy] smtp_max_in_flight",
        "expected a size",
    ),
    (
        "zero",
        "[proxy]\nsmtp_max_in_flight = 0\n",
        ("smtp_max_in_flight", 1),
        "[proxy] smtp_max_in_flight",
        "expected a number above 0",
    ),
    (
        "below the largest message",
        '[proxy]\nmax_message_size = "50M"\nsmtp_max_in_flight = "10M"\n',
        ("smtp_max_in_flight", 1),
        "[proxy] smtp_max_in_flight",
        "is below max_message_size (52428800): the largest message could never be sent",
    ),
])  # fmt: skip
def test_errors_name_the_key_and_line(
    tmp_path: Path, text: str, where: tuple[str, int], label: str, expectation: str
) -> None:
    assert_config_error(tmp_path, text, where, label, expectation)
