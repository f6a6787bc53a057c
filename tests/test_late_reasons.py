"""Issue 24 #5: why a hold whose last day passed is on the call list — the ILS sent the
event late (「取置期限後に通知」), or it came in time and the day ran out while the hold
waited in its digest window or between retries."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from tests.helpers import hold_event, runtime_do, set_contact, variant
from worker.contact import CALL_REASON_JA, CallReason, ContactState
from worker.holds.calls import passed_reason
from worker.holds.policy import pickup_deadline
from worker.jdate import TOKYO


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def test_passed_reason_tells_late_events_from_holds_that_waited():
    day = date(2026, 12, 5)
    end = pickup_deadline(day)  # 12月6日 0:00 Tokyo
    assert passed_reason(day, ms(end + timedelta(minutes=1)), "gathering") == CallReason.PICKUP_PASSED
    assert passed_reason(day, ms(end), "retrying") == CallReason.PICKUP_PASSED
    assert passed_reason(day, 0, "gathering") == CallReason.PICKUP_PASSED  # never claimed
    before = ms(end - timedelta(minutes=5))
    assert passed_reason(day, before, "gathering") == CallReason.PASSED_WHILE_GATHERING
    assert passed_reason(day, before, "retrying") == CallReason.PASSED_WHILE_RETRYING
    texts = {CALL_REASON_JA[r] for r in (CallReason.PICKUP_PASSED, CallReason.PASSED_WHILE_GATHERING,
                                         CallReason.PASSED_WHILE_RETRYING)}
    assert len(texts) == 3
    assert "待ち時間中" in CALL_REASON_JA[CallReason.PASSED_WHILE_GATHERING]
    assert "再送中" in CALL_REASON_JA[CallReason.PASSED_WHILE_RETRYING]
    assert "取置期限後に通知" not in CALL_REASON_JA[CallReason.PASSED_WHILE_GATHERING]


def test_a_hold_whose_last_day_passes_in_its_digest_window_says_so(settings, clean_redis, tmp_path):
    """The hold joins its window before midnight; the window is sent after it. The night
    is simulated by moving the hold's stored day and first claim back by two days."""
    from worker.app import digest, holds
    from worker.ils.events import parse_event

    s = variant(settings, mail={"outbox_dir": tmp_path / "out"}, digest={"gather_s": 600})
    tomorrow = (datetime.now(TOKYO) + timedelta(days=1)).date()

    async def go(rt):
        await set_contact(rt.store, "C1", ContactState.ACTIVE)
        ev = parse_event(hold_event("H1", "C1", pickup_by=tomorrow.isoformat()), set(s.branches))
        r = await holds.notify_hold_ready(rt, ev)
        assert r.outcome.name == "GATHERING", r
        # midnight passes while it waits: its last day is now the day before yesterday's
        passed = tomorrow - timedelta(days=2)
        key = rt.store.k.hold("H1")
        stored = json.loads(await rt.store.r.hget(key, "event"))
        await rt.store.r.hset(key, mapping={
            "event": json.dumps({**stored, "pickup_by": passed.isoformat()}),
            "pickup_by": passed.isoformat(),
            "first_ms": ms(pickup_deadline(passed) - timedelta(minutes=10))})
        await digest.send_window(rt, "C1", ev.pickup_branch, r.detail)
        # a hold whose event itself came after its last day: the ILS was late
        late = parse_event(hold_event("H2", "C2", pickup_by=passed.isoformat(), contact="email"),
                           set(s.branches))
        await holds.notify_hold_ready(rt, late)
        return {c["hold_id"]: c for c in await rt.store.calls()}

    calls = runtime_do(s, go)
    assert calls["H1"]["reason"] == "pickup_passed_while_gathering", calls
    assert "待ち時間中に取置期限が過ぎた" in calls["H1"]["reason_ja"]
    assert calls["H2"]["reason"] == "pickup_passed" and calls["H2"]["reason_ja"] == "取置期限後に通知"
