"""The plain rules: who may get e-mail, and when retries give way to a phone call."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from worker.contact import CallReason, Contact, ContactState, decide_contact
from worker.jdate import TOKYO
from worker.holds.retention import retention_s
from worker.holds.policy import (next_retry_delay_s, pickup_deadline, pickup_passed,
                           retry_horizon)
from worker.settings import DeliverySettings

ADDR = "taro@docomo.ne.jp"


@pytest.mark.parametrize("chosen,contact,by_email,reason", [
    ("email", Contact("C", ContactState.ACTIVE, ADDR, ADDR), True, None),
    ("phone", Contact("C", ContactState.ACTIVE, ADDR, ADDR), False, CallReason.CHOSE_PHONE),
    ("email", Contact("C"), False, CallReason.NO_ADDRESS),
    ("email", Contact("C", ContactState.PENDING, None, None, "new@ezweb.ne.jp"), False,
     CallReason.APPROVAL_PENDING),
    # a new registration does not take the approved address away
    ("email", Contact("C", ContactState.PENDING, ADDR, ADDR, "new@ezweb.ne.jp"), True, None),
    ("email", Contact("C", ContactState.SUSPENDED, ADDR, ADDR), False, CallReason.SUSPENDED),
    ("phone", Contact("C", ContactState.SUSPENDED, ADDR, ADDR), False, CallReason.CHOSE_PHONE),
    ("email", Contact("C", ContactState.ACTIVE, None, None), False, CallReason.NO_ADDRESS),
])
def test_contact_rule(chosen, contact, by_email, reason):
    d = decide_contact(chosen, contact)
    assert d.by_email is by_email and d.reason == reason
    assert d.envelope == (ADDR if by_email else None)


D = DeliverySettings(min_backoff_s=30, max_backoff_s=1800, max_retry_hours=24,
                     phone_margin_hours=48)


def test_pickup_window_closes_at_midnight_tokyo():
    assert pickup_deadline(date(2026, 12, 5)) == datetime(2026, 12, 6, tzinfo=TOKYO)
    assert not pickup_passed(date(2026, 12, 5), datetime(2026, 12, 5, 23, 59, tzinfo=TOKYO))
    assert pickup_passed(date(2026, 12, 5), datetime(2026, 12, 6, 0, 0, tzinfo=TOKYO))


def test_horizon_is_the_earlier_of_max_retry_and_phone_margin():
    first = datetime(2026, 11, 29, 10, tzinfo=TOKYO)
    # far deadline: 24 h after the first attempt
    assert retry_horizon(first, date(2026, 12, 20), D) == first + timedelta(hours=24)
    # near deadline: 48 h before the window closes
    assert retry_horizon(first, date(2026, 11, 30), D) == datetime(2026, 11, 29, tzinfo=TOKYO)


def test_backoff_grows_and_stops_at_the_horizon():
    now = datetime(2026, 11, 29, 10, tzinfo=TOKYO)
    horizon = now + timedelta(hours=1)
    rng = random.Random(1)
    delays = [next_retry_delay_s(n, now, horizon, D, rng) for n in range(1, 6)]
    assert all(d is not None for d in delays)
    assert 30 <= delays[0] <= 37.5 and 60 <= delays[1] <= 75 and delays[1] > delays[0]
    # capped at max_backoff (plus at most 25 % jitter) …
    assert 1800 <= next_retry_delay_s(10, now, horizon, D, rng) <= 2250
    # … and refused when even that lands past the horizon
    assert next_retry_delay_s(10, now, now + timedelta(minutes=20), D, rng) is None
    assert next_retry_delay_s(1, now, now + timedelta(seconds=10), D, rng) is None


def test_records_outlive_the_deadline_for_late_bounces():
    now = datetime(2026, 11, 29, 10, tzinfo=TOKYO)
    keep = retention_s(date(2026, 12, 5), now, 30)
    assert keep > (pickup_deadline(date(2026, 12, 5)) - now).total_seconds() + 29 * 86400
    assert retention_s(date(2020, 1, 1), now, 30) == 86400


def test_activity_summary_counts_and_starts_again():
    from worker.queue import activity

    activity.take()
    for outcome in ["sent", "phoned", "sent", "duplicate", "sent"]:
        activity.note(outcome)
    counts = activity.take()
    assert activity.summary(counts, 60) == "notices in the last 60 s: sent 3, phoned 1, duplicate 1"
    assert activity.take() == {}  # a quiet minute prints nothing


def test_the_deadline_rules_do_not_overflow_at_the_ends_of_the_calendar():
    """Issue 14 #3: 9999-12-31 raised OverflowError here, and give_up depended on it."""
    now = datetime(2026, 11, 29, 10, tzinfo=TOKYO)
    assert retention_s(date.max, now, 30) > 7000 * 365 * 86400
    assert retention_s(date.min, now, 30) == 86400
    assert not pickup_passed(date.max, now) and pickup_passed(date.min, now)
    assert retry_horizon(now, date.max, D) == now + timedelta(hours=24)
    assert retry_horizon(now, date.min, D) < now
