"""The statistics' pure rules (worker/stats/): carrier buckets, wait buckets, what a
contact change counts, how a day's counts become rows, the CSV for Excel, the month."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime

import pytest
from hypothesis import given, strategies as st

from worker.app.stats import last_days, last_months, month_period
from worker.errors import InputError
from worker.jdate import TOKYO
from worker.stats.fields import carrier_bucket, contact_counts, wait_bucket
from worker.stats.report import COLUMNS, by_branch, day_rows, pending_ages, to_csv, total

NOW = datetime(2026, 12, 6, 15, 0, tzinfo=TOKYO)


@pytest.mark.parametrize("address,bucket", [
    ("a@docomo.ne.jp", "docomo"), ("a@ezweb.ne.jp", "au"), ("a@au.com", "au"),
    ("a@softbank.ne.jp", "softbank"), ("a@i.softbank.jp", "softbank"),
    ("a@d.vodafone.ne.jp", "softbank"), ("a@gmail.com", "other"), ("a@ymobile.ne.jp", "other"),
    ("a@DOCOMO.NE.JP", "docomo"), ("nonsense", "other"), ("", "other")])
def test_carrier_buckets(address, bucket):
    assert carrier_bucket(address) == bucket


@pytest.mark.parametrize("seconds,bucket", [
    (0, "d0"), (86399, "d0"), (86400, "d1"), (3 * 86400, "d3"), (6.9 * 86400, "d3"),
    (7 * 86400, "d7"), (20 * 86400, "d14"), (400 * 86400, "d30")])
def test_wait_buckets(seconds, bucket):
    assert wait_bucket(seconds) == bucket


def test_an_approval_counts_its_branch_kind_and_wait():
    before = {"pending_branch": "minori", "pending_at": "2026-12-03T15:00:00+09:00"}
    counts = dict(contact_counts(before, {"kind": "approved", "branch": "minori"}, NOW))
    assert counts == {"minori|approved.code": 1, "minori|wait.d3": 1, "minori|wait.n": 1,
                      "minori|wait.sum_s": 3 * 86400}
    no_code = dict(contact_counts({**before, "pending_at": "garbage"},
                                  {"kind": "approved_without_code", "branch": "minori"}, NOW))
    assert no_code == {"minori|approved.without_code": 1}  # an unreadable time adds no wait
    assert contact_counts({}, {"kind": "registered", "branch": "tamari"}, NOW) == [
        ("tamari|registered", 1)]
    assert contact_counts({}, {"kind": "suspended", "branch": "tamari"}, NOW) == []


def test_rows_sum_and_the_csv_opens_in_excel():
    days = {date(2026, 12, 1): {"ogawa|mailed.single.docomo": 3, "ogawa|mailed.digest.au": 2,
                                "ogawa|listed.chose_phone": 4, "ogawa|listed.bounced": 1,
                                "ogawa|bounced.filtered.docomo": 1, "ogawa|sendfail.docomo": 1,
                                "tamari|called": 2, "mito|registered": 1},
            date(2026, 12, 2): {}}
    rows = day_rows(days, ["ogawa", "tamari", "minori"])
    assert [(d.day, b) for d, b, _ in rows] == [(1, "ogawa"), (1, "tamari"), (1, "minori"),
                                                (1, "mito"), (2, "ogawa"), (2, "tamari"),
                                                (2, "minori")]
    t = by_branch(days[date(2026, 12, 1)])["ogawa"]
    assert (t.get("mail"), t.get("phone"), t.get("failed")) == (5, 4, 1)
    assert t.failure_rate("docomo") == 1 / 4 and t.failure_rate("softbank") is None
    text = to_csv(rows, {"ogawa": "小川図書館"})
    assert text.startswith("\ufeff") and "\r\n" in text
    parsed = list(csv.reader(io.StringIO(text[1:])))
    assert len(parsed) == 1 + len(rows) and len(parsed[0]) == 3 + len(COLUMNS)
    assert parsed[1][:3] == ["2026-12-01", "ogawa", "小川図書館"]
    everything = total(days, month_period("2026-12"), None)
    assert everything.get("called") == 2 and everything.get("registered") == 1


def test_pending_registrations_by_age():
    ages = pending_ages([{"pending_branch": "ogawa", "pending_at": "2026-12-06T09:00:00+09:00"},
                         {"pending_branch": "ogawa", "pending_at": "2026-11-01T09:00:00+09:00"},
                         {"pending_branch": "tamari", "pending_at": "not a time"}], NOW)
    assert ages == {"ogawa": {"d0": 1, "d30": 1}, "tamari": {"d0": 1}}


def test_months_and_days():
    assert month_period("2026-02").last == date(2026, 2, 28)
    assert month_period("2024-02").last == date(2024, 2, 29)
    assert month_period("2026-12").last == date(2026, 12, 31)
    months = last_months(date(2026, 3, 15))
    assert [m.label for m in months][:3] == ["2025-04", "2025-05", "2025-06"]
    assert months[-1].label == "2026-03" and len(months) == 12
    days = last_days(date(2026, 3, 1))
    assert len(days) == 30 and days[-1].first == date(2026, 3, 1)


@given(st.text(max_size=20))
def test_a_bad_month_is_refused_with_an_example(text):
    try:
        p = month_period(text)
    except InputError as e:
        assert "YYYY-MM" in str(e)
    else:
        assert p.first.strftime("%Y-%m") == text.strip()
