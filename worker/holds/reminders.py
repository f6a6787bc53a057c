"""When a pickup reminder is due (pure; see worker/app/reminders.py)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from ..jdate import TOKYO


def reminder_at(pickup_by: date, days_before: int, hour: int) -> datetime:
    """The moment (JST) the reminder of a hold whose last day is ``pickup_by`` is due."""
    return datetime.combine(pickup_by - timedelta(days=days_before), time(hour), TOKYO)


def may_remind(pickup_by: date, at: datetime) -> bool:
    """Never after the last day: a reminder at ``at`` is still useful on ``pickup_by``."""
    return at.astimezone(TOKYO).date() <= pickup_by
