"""Dates the Japanese way: 12月5日(土), in Asia/Tokyo."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = "月火水木金土日"  # date.weekday(): Monday is 0


def ja_date(d: date | datetime) -> str:
    """``12月5日(土)``; a datetime is first converted to Tokyo time."""
    if isinstance(d, datetime):
        d = d.astimezone(TOKYO).date()
    return f"{d.month}月{d.day}日({WEEKDAYS[d.weekday()]})"


def ja_datetime(dt: datetime) -> str:
    """``12月5日(土) 10:30`` in Tokyo time."""
    t = dt.astimezone(TOKYO)
    return f"{ja_date(t)} {t:%H:%M}"


def now_tokyo() -> datetime:
    return datetime.now(TOKYO)
