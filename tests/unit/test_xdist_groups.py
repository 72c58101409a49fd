"""The parallel run's groups (tests/testbed/parallel.py), on this repository's own tests."""

from __future__ import annotations

from pathlib import Path

from tests.testbed.parallel import work_unit

ROOT = Path(__file__).resolve().parents[2]


def test_a_module_with_a_module_scoped_fixture_is_one_unit() -> None:
    # test_filing.py's ``team`` (three proxies) is module-scoped.
    for test in ("test_accounts_list_shows_folders_and_counts", "test_renaming_x[1]"):
        nodeid = f"tests/integration/test_filing.py::{test}"
        assert work_unit(nodeid, ROOT) == "tests/integration/test_filing.py"


def test_every_browser_test_is_in_one_unit() -> None:
    for nodeid in (
        "tests/browser/test_pages.py::test_the_page_has_an_icon",
        "tests/browser/test_actions.py::test_focus_off_then_on",
    ):
        assert work_unit(nodeid, ROOT) == "tests/browser/"


def test_other_tests_are_units_of_their_own() -> None:
    for nodeid in (
        "tests/integration/test_triage.py::test_release_now_while_running",
        "tests/unit/test_mail.py::test_size_of_a_prefix",
        "tests/integration/test_imap_oauth.py::test_x[keyring]",
    ):
        assert work_unit(nodeid, ROOT) == nodeid


def test_a_module_that_cannot_be_read_is_a_unit_per_test(tmp_path: Path) -> None:
    assert work_unit("tests/gone.py::test_a", tmp_path) == "tests/gone.py::test_a"
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_b.py").write_text(
        '@pytest.fixture(scope="class")\ndef shared() -> None: ...\n', encoding="utf-8"
    )
    assert work_unit("tests/test_b.py::T::test_c", tmp_path) == "tests/test_b.py"
