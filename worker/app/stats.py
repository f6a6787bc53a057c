"""The library's statistics for the 「統計」 page, its CSV and ``omitama-notify stats``:
the last 30 days, the last 12 months, one month's rows, registrations waiting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ..errors import InputError
from ..jdate import now_tokyo
from ..settings import Settings
from ..stats.report import Period, day_rows, pending_ages, to_csv, Tally
from ..store.core import Store

_MONTH = re.compile(r"^(\d{4})-(\d{2})$", re.ASCII)


def month_period(text: str) -> Period:
    """``YYYY-MM`` → that month; a clear error for anything else."""
    m = _MONTH.match(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 2000:
        raise InputError(f"month {text!r}: expected YYYY-MM, e.g. 2026-12")
    first = date(int(m.group(1)), int(m.group(2)), 1)
    return Period(first.strftime("%Y-%m"), first, _next_month(first) - timedelta(days=1))


def _next_month(d: date) -> date:
    return date(d.year + (d.month == 12), d.month % 12 + 1, 1)


def last_days(today: date, n: int = 30) -> list[Period]:
    return [Period(f"{d.month}/{d.day}", d, d)
            for d in (today - timedelta(days=n - 1 - i) for i in range(n))]


def last_months(today: date, n: int = 12) -> list[Period]:
    first = date(today.year, today.month, 1)
    months = []
    for _ in range(n):
        months.append(month_period(first.strftime("%Y-%m")))
        first = date(first.year - (first.month == 1), (first.month - 2) % 12 + 1, 1)
    return months[::-1]


@dataclass(frozen=True)
class Overview:
    days: list[Period]                       # the last 30 days, oldest first
    months: list[Period]                     # the last 12 months, oldest first
    counts: dict[date, dict[str, int]]       # every day the two cover
    pending: dict[str, dict[str, int]]       # branch → age bucket → registrations waiting
    now: datetime


async def overview(store: Store, now: datetime | None = None) -> Overview:
    now = now or now_tokyo()
    today = now.date()
    days, months = last_days(today), last_months(today)
    counts = await store.stats.days(min(months[0].first, days[0].first), today)
    records = [r for _, r in await store.contacts.pending()]
    return Overview(days, months, counts, pending_ages(records, now), now)


async def month_rows(store: Store, settings: Settings,
                     month: Period) -> list[tuple[date, str, Tally]]:
    """One row per day and branch of ``month`` (up to today when it is this month)."""
    last = min(month.last, now_tokyo().date())
    if last < month.first:
        return []
    return day_rows(await store.stats.days(month.first, last), settings.branches)


async def month_csv(store: Store, settings: Settings, month: Period) -> str:
    names = {code: b.name for code, b in settings.branches.items()}
    return to_csv(await month_rows(store, settings, month), names)
