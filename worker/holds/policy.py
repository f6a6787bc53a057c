"""When to retry and when to give up on e-mail (pure).

A ready hold must never go unannounced: retries of a failing relay stop early
enough for staff to phone the patron before the pickup window closes.

Total on every ``date``: the event contract keeps days within 2000..2199
(worker.ils.events), but the last resort (worker.app.holds.give_up) also lists holds whose
event was refused, so this arithmetic must not fail on 9999-12-31 either.
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta

from ..jdate import TOKYO
from ..settings import DeliverySettings


_LAST_MOMENT = datetime.max.replace(tzinfo=TOKYO)


def pickup_deadline(pickup_by: date) -> datetime:
    """The moment the pickup window closes: the end of ``pickup_by`` in Tokyo."""
    if pickup_by == date.max:  # the day after it is not a date
        return _LAST_MOMENT
    return datetime.combine(pickup_by + timedelta(days=1), time(0, 0), tzinfo=TOKYO)


def pickup_passed(pickup_by: date, now: datetime) -> bool:
    return now >= pickup_deadline(pickup_by)


def retry_horizon(first_attempt: datetime, pickup_by: date, d: DeliverySettings) -> datetime:
    """The last moment a retry may be scheduled for: whichever comes first of
    ``max_retry_hours`` after the first attempt and ``phone_margin_hours`` before
    the pickup window closes."""
    deadline = pickup_deadline(pickup_by)
    try:
        last = deadline - timedelta(hours=d.phone_margin_hours)
    except OverflowError:  # a deadline in year 1: long passed
        last = deadline
    try:
        return min(first_attempt + timedelta(hours=d.max_retry_hours), last)
    except OverflowError:  # a first attempt near year 9999
        return last


def next_retry_delay_s(attempts: int, now: datetime, horizon: datetime, d: DeliverySettings,
                       rng: random.Random | None = None) -> float | None:
    """Exponential backoff with jitter after ``attempts`` failed attempts, or None
    when the next try would fall past the horizon (the hold goes to the phone list)."""
    base = min(d.max_backoff_s, d.min_backoff_s * 2 ** max(attempts - 1, 0))
    delay = base * (1 + 0.25 * (rng or random).random())
    if now + timedelta(seconds=delay) > horizon:
        return None
    return delay
