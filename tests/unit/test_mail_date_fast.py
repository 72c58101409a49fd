"""The common Date shape is read without the standard library's parser, to the same moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from commsproxy.classifier import mail as mail_module
from commsproxy.classifier.mail import _date, _parsed_date

_DAYS = ["Mon, ", "Sun, ", "", "mon, ", "Xyz, ", "Mon,"]
_MONTHS = ["Jan", "Feb", "Dec", "May", "jan", "Foo"]


@st.composite
def _dates(draw: st.DrawFn) -> str:
    day = draw(st.integers(0, 99))
    year = draw(st.integers(0, 9999))
    hms = [draw(st.integers(0, 99)) for _ in range(3)]
    zone = draw(st.sampled_from(["+", "-"])) + f"{draw(st.integers(0, 9999)):04d}"
    text = (
        f"{draw(st.sampled_from(_DAYS))}{day:0{draw(st.sampled_from([1, 2]))}d} "
        f"{draw(st.sampled_from(_MONTHS))} {year:0{draw(st.sampled_from([2, 4]))}d} "
        f"{hms[0]:02d}:{hms[1]:02d}:{hms[2]:02d} {zone}"
    )
    return text + draw(st.sampled_from(["", " (UTC)", " (PST)", "  ", " x", "\t"]))


@settings(max_examples=2000, deadline=None)
@given(_dates())
def test_the_common_shape_reads_as_the_standard_library_reads_it(text: str) -> None:
    assert _date(text.encode()) == _parsed_date(text.strip())


def test_a_typical_date() -> None:
    moment = _date(b"Mon, 07 Dec 2026 08:00:00 +0100")
    assert moment is not None
    assert moment.isoformat() == "2026-12-07T07:00:00+00:00"
    assert _date(b"Mon, 07 Dec 2026 08:00:00 -0000") == _parsed_date("7 Dec 2026 08:00:00 +0000")


def _through_a_zone(parts: tuple[int, ...], offset: int) -> datetime | None:
    """What _utc answered by converting from a zone of the offset."""
    year, month, day, hour, minute, second = parts
    try:
        zone = timezone(timedelta(seconds=offset)) if abs(offset) < 86_400 else UTC
        return datetime(year, month, day, hour, minute, second, tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


@settings(max_examples=2000, deadline=None)
@given(
    st.tuples(
        st.sampled_from([0, 1, 2, 1999, 2000, 2026, 9999, 10000]),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 25),
        st.integers(0, 60),
        st.integers(0, 61),
    ),
    st.integers(-100_000, 100_000) | st.sampled_from([0, 3600, -86_399, 86_399, 86_400]),
)
def test_utc_as_through_a_zone(parts: tuple[int, ...], offset: int) -> None:
    got = mail_module._utc(parts, offset)
    expected = _through_a_zone(parts, offset)
    assert got == expected
    if got is not None and expected is not None:
        assert got.tzinfo is UTC
        assert got.utcoffset() == timedelta(0)
        assert repr(got) == repr(expected)
