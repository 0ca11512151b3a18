"""Billing periods: calendar months of a contract's zone as half-open UTC intervals. What would
break: a month computed in UTC instead of the contract's zone, a DST change that opens a gap or
an overlap between months (an outcome billed twice or never), or a label parsed loosely."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raas.core.periods import (
    Period,
    is_known_time_zone,
    month_period,
    next_period,
    parse_period,
    period_containing,
    previous_period,
    render,
    start_of_day,
)

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Lord_Howe", "UTC"]
HOUR = timedelta(hours=1)


def days(count: int) -> timedelta:
    return timedelta(days=count)


def test_berlin_months_with_a_dst_change_are_an_hour_short_or_long() -> None:
    march = month_period("Europe/Berlin", 2026, 3)  # clocks forward on 29 March
    assert march == Period(
        label="2026-03",
        time_zone="Europe/Berlin",
        start=datetime(2026, 2, 28, 23, tzinfo=UTC),
        end=datetime(2026, 3, 31, 22, tzinfo=UTC),
    )
    assert march.end - march.start == days(31) - HOUR
    october = month_period("Europe/Berlin", 2026, 10)  # clocks back on 25 October
    assert october.start == datetime(2026, 9, 30, 22, tzinfo=UTC)
    assert october.end == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert october.end - october.start == days(31) + HOUR
    november = month_period("Europe/Berlin", 2026, 11)
    assert november.end - november.start == days(30)


def test_other_zones_change_on_their_own_dates_and_by_their_own_amounts() -> None:
    new_york_march = month_period("America/New_York", 2026, 3)  # 8 March
    assert new_york_march.start == datetime(2026, 3, 1, 5, tzinfo=UTC)
    assert new_york_march.end - new_york_march.start == days(31) - HOUR
    new_york_november = month_period("America/New_York", 2026, 11)  # 1 November, 02:00
    assert new_york_november.start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert new_york_november.end - new_york_november.start == days(30) + HOUR
    lord_howe_april = month_period("Australia/Lord_Howe", 2026, 4)  # back half an hour
    assert lord_howe_april.end - lord_howe_april.start == days(30) + timedelta(minutes=30)
    lord_howe_october = month_period("Australia/Lord_Howe", 2026, 10)
    assert lord_howe_october.end - lord_howe_october.start == days(31) - timedelta(minutes=30)
    for month in range(1, 13):
        tokyo = month_period("Asia/Tokyo", 2026, month)
        utc = month_period("UTC", 2026, month)
        assert tokyo.end - tokyo.start == utc.end - utc.start
        assert tokyo.start == utc.start - timedelta(hours=9)


def test_a_month_whose_first_midnight_does_not_exist_starts_at_the_jump() -> None:
    """Cairo moved its clocks from 00:00 to 01:00 on 1 August 2014: August began at the jump."""
    august = month_period("Africa/Cairo", 2014, 8)
    assert august.start == datetime(2014, 7, 31, 22, tzinfo=UTC)
    assert render(august.start, "Africa/Cairo") == "2014-08-01T01:00:00+03:00"
    assert period_containing(august.start - timedelta(seconds=1), "Africa/Cairo").label == "2014-07"
    assert period_containing(august.start, "Africa/Cairo").label == "2014-08"
    # Santiago skips midnight on 8 September 2024: that day starts at 01:00 -03.
    start = start_of_day(date(2024, 9, 8), "America/Santiago")
    assert start == datetime(2024, 9, 8, 4, tzinfo=UTC)
    assert render(start - timedelta(seconds=1), "America/Santiago") == "2024-09-07T23:59:59-04:00"


def test_a_month_whose_first_midnight_happens_twice_starts_at_the_first() -> None:
    """Gaza turned its clocks back from 01:00 to 00:00 on 1 October 2004: October began at the
    first midnight, and the hour that followed, read twice, belongs to October both times."""
    october = month_period("Asia/Gaza", 2004, 10)
    assert october.start == datetime(2004, 9, 30, 21, tzinfo=UTC)
    assert render(october.start, "Asia/Gaza") == "2004-10-01T00:00:00+03:00"
    second_midnight = october.start + HOUR
    assert render(second_midnight, "Asia/Gaza") == "2004-10-01T00:00:00+02:00"
    assert period_containing(second_midnight, "Asia/Gaza") == october
    assert october.end - october.start == days(31) + HOUR
    assert previous_period(october).end - previous_period(october).start == days(30)


def test_labels_parse_strictly() -> None:
    assert parse_period("2026-11", "Europe/Berlin") == month_period("Europe/Berlin", 2026, 11)
    for label in ["2026-13", "2026-00", "2026-1", "26-11", " 2026-11", "2026-11\n", "2026/11", ""]:
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_period(label, "Europe/Berlin")
    with pytest.raises(ValueError, match="IANA"):
        parse_period("2026-11", "Europe/Berln")
    with pytest.raises(ValueError, match="month"):
        month_period("UTC", 2026, 13)


def test_next_and_previous_cross_the_year() -> None:
    december = parse_period("2026-12", "Asia/Tokyo")
    january = next_period(december)
    assert january.label == "2027-01"
    assert january.start == december.end
    assert previous_period(january) == december
    assert (january.year, january.month) == (2027, 1)


def test_render_uses_the_offset_of_the_contract_zone() -> None:
    instant = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # the first instant of CEST
    assert render(instant, "Europe/Berlin") == "2026-03-29T03:00:00+02:00"
    assert render(instant - timedelta(microseconds=1), "Europe/Berlin") == (
        "2026-03-29T01:59:59.999999+01:00"
    )
    assert render(instant, "UTC") == "2026-03-29T01:00:00+00:00"
    assert render(instant, "Australia/Lord_Howe") == "2026-03-29T12:00:00+11:00"
    with pytest.raises(ValueError, match="aware"):
        render(datetime(2026, 3, 29), "UTC")
    with pytest.raises(ValueError, match="aware"):
        period_containing(datetime(2026, 3, 29), "UTC")


def test_time_zone_names_are_exact() -> None:
    assert is_known_time_zone("Europe/Berlin")
    assert is_known_time_zone("UTC")
    for name in ["europe/berlin", "CEST", "Europe/Berln", "", "../etc/passwd", "Europe/"]:
        assert not is_known_time_zone(name)


instants = st.datetimes(
    min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
zones = st.sampled_from(ZONES)


@given(instants, zones)
def test_the_containing_period_contains_the_instant(instant: datetime, time_zone: str) -> None:
    period = period_containing(instant, time_zone)
    assert period.start <= instant < period.end
    assert instant in period
    assert period.start.tzinfo is UTC and period.end.tzinfo is UTC
    local = instant.astimezone(ZoneInfo(time_zone))
    assert period.label == f"{local.year:04d}-{local.month:02d}"
    assert days(28) - HOUR <= period.end - period.start <= days(31) + HOUR


@given(instants, zones, st.integers(1, 30))
def test_consecutive_months_tile_time(instant: datetime, time_zone: str, count: int) -> None:
    """No gap and no overlap: each month starts where the one before it ends."""
    period = period_containing(instant, time_zone)
    for _ in range(count):
        following = next_period(period)
        assert following.start == period.end
        assert period_containing(period.end, time_zone) == following
        assert period_containing(period.end - timedelta(microseconds=1), time_zone) == period
        assert previous_period(following) == period
        period = following


@given(instants, zones)
def test_an_instant_in_another_offset_gets_the_same_period(
    instant: datetime, time_zone: str
) -> None:
    elsewhere = instant.astimezone(timezone(timedelta(hours=-7, minutes=-30)))
    assert period_containing(elsewhere, time_zone) == period_containing(instant, time_zone)
