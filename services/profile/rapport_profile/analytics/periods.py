"""The periods analytics answers in: a day, a week (from Monday) or a calendar month; the
range a request may ask for, and its bounds in UTC."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

from rapport_events import errors
from rapport_events.base import utcnow

Interval = Literal["day", "week", "month"]


class InvalidRange(errors.InvalidRequest):
    """A date range analytics cannot answer for."""


def period_start(day: date, interval: Interval) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def next_period(start: date, interval: Interval) -> date:
    if interval == "week":
        return start + timedelta(days=7)
    if interval == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return start + timedelta(days=1)


def periods(start: date, end: date, interval: Interval) -> list[date]:
    """Every period that overlaps [start, end], in order."""
    found, current = [], period_start(start, interval)
    while current <= end:
        found.append(current)
        current = next_period(current, interval)
    return found


# Dates analytics answers for; far enough apart for any business history, and far
# enough inside date's limits that period arithmetic and forecasts cannot overflow.
FIRST_DAY = date(1900, 1, 1)


LAST_DAY = date(2199, 12, 31)


MAX_PERIODS = 1000


def default_range(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or utcnow().date()
    return (start or max(end - timedelta(days=89), FIRST_DAY)), end


def period_count(start: date, end: date, interval: Interval) -> int:
    """How many periods overlap [start, end], without listing them."""
    first, last = period_start(start, interval), period_start(end, interval)
    if interval == "month":
        return (last.year - first.year) * 12 + last.month - first.month + 1
    return (last - first).days // (7 if interval == "week" else 1) + 1


def requested_range(start: date | None, end: date | None, interval: Interval) -> tuple[date, date]:
    """The range to answer for (the last 90 days by default), or InvalidRange."""
    for name, day in (("from", start), ("to", end)):
        if day is not None and not FIRST_DAY <= day <= LAST_DAY:
            raise InvalidRange(f"{name} must lie between {FIRST_DAY} and {LAST_DAY}")
    start, end = default_range(start, end)
    if start > end:
        raise InvalidRange("from must not be after to")
    if period_count(start, end, interval) > MAX_PERIODS:
        raise InvalidRange(f"at most {MAX_PERIODS} {interval}s per request")
    return start, end


def bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(start, time(), tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC),
    )
