"""A digest window is sent by whichever worker process finds it due in ``gather_due``
(issue 22; worker/queue/windows.py): the members' messages are acknowledged at the join,
no message waits for the window, and nothing is stranded when the window's entry is not
there — lost (deleted, as a write that never happened) — nor when the worker is killed
with ``kill -9`` mid-window, nor when a hold arrives while its window goes out.

Real Redis, the real ``omitama-notify worker`` command (its sweeper is the safety net
under test) or a dramatiq worker in this process, aiosmtpd on loopback.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

import pytest

from tests.helpers import hold_event, run_worker, settle, variant, wait_for
from tests.test_digest import active, decoded, hold, outcomes, send
from tests.test_faults import FAST, enqueue
from tests.worker_command import WorkerCommand

pytestmark = pytest.mark.slow

WINDOW_S = 4.0  # long enough to stop a worker inside it
LEASE_S = float(FAST["OMITAMA_NOTIFY_DELIVERY__LEASE_S"])
SWEEP_S = float(FAST["OMITAMA_NOTIFY_DELIVERY__SWEEP_INTERVAL_S"])
SLACK_S = 4.0  # a worker's start, a busy machine


def _q() -> str:
    return f"{os.environ['OMITAMA_NOTIFY_REDIS__NAMESPACE']}:notifications"


def queued(r) -> Counter:
    """Actor names of every message stored in our queue and its delayed queue."""
    return Counter(json.loads(raw)["actor_name"] for key in (f"{_q()}.msgs", f"{_q()}.DQ.msgs")
                   for raw in r.hvals(key))


def worker(sink, **env: str) -> WorkerCommand:
    return WorkerCommand(sink.port, processes=1, threads=4, **FAST,
                         OMITAMA_NOTIFY_DIGEST__GATHER_S=str(WINDOW_S), **env)


def titled(h: str) -> dict:
    return {"title": f"本-{h}", "material": "book"}


def in_mail(m) -> list[str]:
    return sorted(re.findall(r"本-(H\d+)", decoded(m).get_content()))


def test_a_window_whose_entry_is_lost_is_sent_by_the_sweeper(settings, clean_redis,
                                                             smtp_sink):
    active(settings, "C1", "taro@docomo.ne.jp")
    ids = ["H1", "H2", "H3"]
    w = worker(smtp_sink)
    try:
        enqueue(clean_redis, [hold_event(h, "C1", item=titled(h)) for h in ids])
        wait_for(lambda: all(hold(settings, h).get("gather") for h in ids))
        w.stop()  # inside the window
        assert smtp_sink.messages == []
        # no message waits: the members' own were acknowledged at the join, and the window
        # has its entry in gather_due
        assert not queued(clean_redis), queued(clean_redis)
        due_key = f"{settings.redis.key_prefix}gather_due"
        [entry] = clean_redis.zrange(due_key, 0, -1)
        assert entry.endswith(" C1")
        clean_redis.zrem(due_key, entry)  # lost, as a write that never happened
        [gather_key] = clean_redis.keys(f"{settings.redis.key_prefix}gather:*")
        due_s = int(clean_redis.hget(gather_key, "due")) / 1000
        w.start()
        # the sweeper re-sends the members' events two leases past the window's end (or
        # at its first look, when the worker came back later than that)
        look = max(due_s + 2 * LEASE_S, time.time())
        wait_for(lambda: smtp_sink.messages, timeout=look - time.time() + SWEEP_S + SLACK_S)
        at = time.time()
        wait_for(lambda: all(hold(settings, h).get("status") == "sent" for h in ids))
        settle(1.0)  # a second mail would show now
    finally:
        w.stop()
    # the sweeper brought the members back after the end + two leases; the first sent all
    assert due_s + 2 * LEASE_S - 0.5 <= at <= look + SWEEP_S + SLACK_S, (at - due_s, look - due_s)
    [m] = smtp_sink.messages
    assert in_mail(m) == ids and "3点" in decoded(m)["Subject"]
    assert Counter((o["hold_id"], o["outcome"]) for o in outcomes(clean_redis, settings)) == \
        Counter({(h, "mailed"): 1 for h in ids})


def test_kill_9_mid_window_then_restart_one_mail_per_window(settings, clean_redis, smtp_sink):
    plan = {"C1": ["H1", "H2", "H3"], "C2": ["H4", "H5"]}
    for card in plan:
        active(settings, card, f"{card.lower()}@example.jp")
    w = worker(smtp_sink)
    try:
        enqueue(clean_redis, [hold_event(h, c, item=titled(h)) for c, hs in plan.items()
                              for h in hs])
        wait_for(lambda: all(hold(settings, h).get("gather") for hs in plan.values()
                             for h in hs))
        t_kill = time.monotonic()
        w.kill9()  # mid-window: the windows' entries are in Redis, not in the worker
        assert smtp_sink.messages == []
        w.start()
        # the restarted worker's poller finds them due at their end: no heartbeat to time
        # out, no sweep to wait for
        wait_for(lambda: len(smtp_sink.messages) == 2, timeout=WINDOW_S + SLACK_S)
        took = time.monotonic() - t_kill
        wait_for(lambda: all(hold(settings, h).get("status") == "sent"
                             for hs in plan.values() for h in hs))
        settle(1.0)  # a second mail would show now
        left = queued(clean_redis)
    finally:
        w.stop()
    assert sorted(in_mail(m) for m in smtp_sink.messages) == sorted(plan.values()), took
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [
        "c1@example.jp", "c2@example.jp"]
    assert not left, left


def test_a_hold_arriving_while_its_window_goes_out_waits_in_the_next(settings, clean_redis,
                                                                     smtp_sink):
    s = variant(settings, mail={"transport": "smtp"},
                smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 3},
                delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 12},
                digest={"gather_s": 1.5})
    active(s, "C1", "taro@docomo.ne.jp")
    smtp_sink.state.reply_delay_s = 0.3  # every SMTP reply: the window's send takes ~2 s
    with run_worker(s):
        send(hold_event("H1", "C1", item=titled("H1")))
        send(hold_event("H2", "C1", item=titled("H2")))
        # the poller took the window: its holds are the digest's now
        wait_for(lambda: hold(s, "H1").get("digest"), timeout=10, interval=0.005)
        first = hold(s, "H1")["gather"]
        send(hold_event("H3", "C1", item=titled("H3")))
        wait_for(lambda: hold(s, "H3").get("gather"), timeout=5, interval=0.005)
        assert smtp_sink.messages == [], "the window's mail went out before H3 came"
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h in ("H1", "H2", "H3")),
                 timeout=20)
        settle(1.0)  # a third mail would show now
    assert hold(s, "H3")["gather"] != first
    assert [in_mail(m) for m in smtp_sink.messages] == [["H1", "H2"], ["H3"]]
    assert Counter((o["hold_id"], o["outcome"]) for o in outcomes(clean_redis, s)) == \
        Counter({(h, "mailed"): 1 for h in ("H1", "H2", "H3")})


def test_a_window_message_of_a_version_before_gather_due_still_sends_its_window(
        settings, clean_redis, smtp_sink):
    """Upgrading mid-window: the version before 2026-12-07 scheduled a signed
    ``omitama_digest`` message for each window's end. Such a message, still queued after
    the upgrade, sends the window it names (and takes its ``gather_due`` entry with it)."""
    from worker.queue.actors import digest_window

    s = variant(settings, mail={"transport": "smtp"},
                smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 3},
                digest={"gather_s": 300})  # the window's own end is far off
    active(s, "C1", "taro@docomo.ne.jp")
    with run_worker(s):
        send(hold_event("H1", "C1", item=titled("H1")))
        send(hold_event("H2", "C1", item=titled("H2")))
        wait_for(lambda: all(hold(s, h).get("gather") for h in ("H1", "H2")))
        gid = hold(s, "H1")["gather"]
        # the old version's message, signed as our worker signs its own (SignInternal)
        digest_window.send({"card_number": "C1", "pickup_branch": "ogawa", "gather": gid})
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h in ("H1", "H2")),
                 timeout=10)
        settle(0.5)  # a second mail would show now
    [m] = smtp_sink.messages
    assert in_mail(m) == ["H1", "H2"]
    assert clean_redis.zcard(f"{s.redis.key_prefix}gather_due") == 0
    assert Counter((o["hold_id"], o["outcome"]) for o in outcomes(clean_redis, s)) == \
        Counter({(h, "mailed"): 1 for h in ("H1", "H2")})
