"""Billing periods: calendar months in a contract's time zone, as half-open UTC intervals.

A period is [start, end) in UTC, so consecutive months tile time with no gap and no overlap, and
a month holding a daylight-saving change is an hour shorter or longer than its calendar days.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import msgspec

_LABEL_PATTERN: Final = re.compile(r"(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Period(msgspec.Struct, frozen=True):
    """One calendar month of a contract: `label` is "YYYY-MM"; `start` and `end` are aware UTC
    datetimes, `start` included and `end` excluded."""

    label: str
    time_zone: str
    start: datetime
    end: datetime

    def __contains__(self, instant: object) -> bool:
        return isinstance(instant, datetime) and self.start <= instant < self.end

    @property
    def year(self) -> int:
        return int(self.label[:4])

    @property
    def month(self) -> int:
        return int(self.label[5:])


@cache
def _iana_names() -> frozenset[str]:
    # Scanning the zone database takes milliseconds; contracts are checked far more often.
    return frozenset(available_timezones())


def is_known_time_zone(time_zone: str) -> bool:
    """True when `time_zone` is an IANA zone name spelled exactly as the database spells it
    ("Europe/Berlin", "UTC"); "europe/berlin" and "CET+1" are not."""
    return time_zone in _iana_names()


def zone(time_zone: str) -> ZoneInfo:
    """The `ZoneInfo` for an IANA name, or a ValueError that says what was expected."""
    if not is_known_time_zone(time_zone):
        raise ValueError(
            f"unknown time zone {time_zone!r}: expected an IANA name such as Europe/Berlin"
        )
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:  # listed, but its file is unreadable
        raise ValueError(f"time zone {time_zone!r} cannot be loaded: {error}") from error


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"expected an aware datetime (with a UTC offset), found {instant!r}")


def _seconds_since_epoch(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(seconds=1)


def start_of_day(day: date, time_zone: str) -> datetime:
    """The first instant of `day` in `time_zone`, as an aware UTC datetime.

    Midnight is usually that instant. When midnight falls in a daylight-saving gap (the clock
    jumps over it), the day starts at the jump itself; when midnight happens twice, at the first.
    """
    tz = zone(time_zone)
    midnight = datetime.combine(day, time.min)
    # fold=0 is the earlier reading: right when midnight happens twice.
    first = midnight.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == midnight:
        return first
    # Midnight does not exist. With fold=0 Python reads it with the offset from before the gap,
    # with fold=1 with the offset from after it; the jump lies between the two readings, and it
    # is the first instant whose wall clock reads midnight or later. Zone transitions fall on
    # whole seconds, so a search over seconds finds it exactly.
    low = _seconds_since_epoch(midnight.replace(tzinfo=tz, fold=1).astimezone(UTC))
    high = _seconds_since_epoch(first)
    if low > high:
        low, high = high, low
    while low < high:  # at most ~17 steps: a gap is hours wide, never days
        middle = (low + high) // 2
        reading = (_EPOCH + timedelta(seconds=middle)).astimezone(tz).replace(tzinfo=None)
        if reading >= midnight:
            high = middle
        else:
            low = middle + 1
    return _EPOCH + timedelta(seconds=low)


def month_period(time_zone: str, year: int, month: int) -> Period:
    """The calendar month `year`-`month` in `time_zone`, converted to UTC."""
    if not 1 <= month <= 12:
        raise ValueError(f"month must be 1..12, found {month}")
    if not 2 <= year <= 9998:  # one year of slack: converting to UTC may cross into year 1 or 9999
        raise ValueError(f"year must be 2..9998, found {year}")
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return Period(
        label=f"{year:04d}-{month:02d}",
        time_zone=time_zone,
        start=start_of_day(date(year, month, 1), time_zone),
        end=start_of_day(date(next_year, next_month, 1), time_zone),
    )


def period_containing(instant: datetime, time_zone: str) -> Period:
    """The month of `time_zone` that holds `instant` (an aware datetime in any zone)."""
    _require_aware(instant)
    local = instant.astimezone(zone(time_zone))
    period = month_period(time_zone, local.year, local.month)
    # A clock turned back across midnight on the 1st could read last month again; no zone does
    # that on a month boundary today, and this assertion would say so if one ever did.
    assert instant in period, f"{instant} outside {period}"
    return period


def parse_period(label: str, time_zone: str) -> Period:
    """The period named `label` ("YYYY-MM") in `time_zone`."""
    match = _LABEL_PATTERN.fullmatch(label) if isinstance(label, str) else None
    if match is None:
        raise ValueError(f"expected a period label YYYY-MM such as 2026-11, found {label!r}")
    return month_period(time_zone, int(match["year"]), int(match["month"]))


def next_period(period: Period) -> Period:
    """The month right after `period`, in the same zone: its start is `period.end`."""
    year, month = period.year, period.month
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return month_period(period.time_zone, *following)


def previous_period(period: Period) -> Period:
    """The month right before `period`, in the same zone: its end is `period.start`."""
    year, month = period.year, period.month
    preceding = (year - 1, 12) if month == 1 else (year, month - 1)
    return month_period(period.time_zone, *preceding)


def render(instant: datetime, time_zone: str) -> str:
    """`instant` as ISO 8601 with the offset in force in `time_zone` then, such as
    "2026-11-01T00:00:00+01:00"; microseconds appear only when there are some."""
    _require_aware(instant)
    return instant.astimezone(zone(time_zone)).isoformat()
