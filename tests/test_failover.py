"""Issue 19: a ``kill -9`` of the Redis primary under load, on real servers on
loopback (tests/redis_lab.py: one primary and one replica of the suite half's Redis,
6.2 or 7; three of Debian's Sentinels), the real worker (2 processes) following Sentinel, an ILS
sending a steady stream of holds, staff approving registrations. The scenario is
tests/failover_scenario.py (bench/failover.py prints its figures); here, what must hold:

- every hold the ILS was told is queued ends in exactly one outcome once the ILS's
  reconciliation pass (``holds missing``, then the same event again) has run;
- a hold mailed twice was in flight at the kill, and both mails carry one Message-ID;
- every staff action staff were told is confirmed is still there;
- the old primary, back as a replica, changes nothing.

The replica is stalled before the kill: on loopback a plain kill loses no acknowledged
write, and the test would prove nothing; it checks that one was lost.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.failover_scenario import Failover, Result
from tests.redis_lab import lab_or_skip

pytestmark = pytest.mark.slow


def _story(r: Result, log: list[str]) -> str:
    return (f"figures: {r.figures()}\nworker's last lines:\n" + "".join(log[-25:]))


def test_a_kill_9_of_the_primary_leaves_every_hold_one_outcome(tmp_path: Path) -> None:
    with lab_or_skip(tmp_path / "lab") as lab:
        fo = Failover(lab, run=uuid.uuid4().hex[:6],
                      prefix=os.environ["OMITAMA_NOTIFY_REDIS__KEY_PREFIX"],
                      namespace=os.environ["OMITAMA_NOTIFY_REDIS__NAMESPACE"])
        r = fo.play()
    story = _story(r, fo.log)
    print(story)
    assert r.unreplicated_lost, "the stall lost no acknowledged write: the test proved nothing"
    assert r.stuck == [], "the worker never went idle: " + story
    assert r.lost_after == [], story
    holds = set(r.acked)
    assert {h: o for h in holds if len(o := r.outcomes.get(h, [])) != 1} == {}, story
    assert set(r.outcomes) <= holds, story
    assert {r.hold_of(m) for m in r.mails} <= holds, story
    dup = r.duplicated()
    assert {h: ids for h, ids in dup.items() if len(ids) > 2 or len(set(ids)) != 1} == {}, \
        "mailed more than twice, or under another Message-ID: " + story
    assert set(dup) <= r.in_flight(), "mailed twice, not in flight at the kill: " + story
    nxt = r.next_mail_s()
    assert nxt is not None and nxt < 20, story
    confirmed = {a.card for a in r.staff if a.kept}
    assert confirmed, "no staff action was confirmed before the kill: " + story
    assert confirmed - r.staff_active == set(), "confirmed to staff, lost: " + story
    # the old primary back, as a replica: nothing changes
    assert r.rejoined_role == "slave"
    assert r.mails_after_rejoin == len(r.mails), story
    assert r.stream_after_rejoin == r.stream, story
    assert r.staff_active_after_rejoin == r.staff_active, story
