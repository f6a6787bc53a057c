"""The sweeper finds holds and messages a Redis outage left behind (real Redis)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.helpers import hold_event, lease_over, run_worker, variant, wait_for, with_store
from worker.store.keys import Keys
from worker.queue.sweeper import AckWatch, sweep_once
from worker.store.queue_keys import QueueKeys
from worker.store.sweeps import SweepStore


@pytest.fixture
def s(settings, clean_redis, tmp_path):
    return variant(settings, mail={"outbox_dir": tmp_path / "out"}, delivery={"lease_s": 1})


def sweeps(s, client) -> SweepStore:
    """The sweeper's Redis side on the test's client."""
    return SweepStore(client, Keys(s.redis.key_prefix), QueueKeys(s.redis.namespace))


def claim(s, hold_id: str, lease_ms: int) -> None:
    ev = hold_event(hold_id, "C1", contact="phone")
    with_store(s, lambda st: st.claim_hold(hold_id, token="t" + hold_id, lease_ms=lease_ms,
                                           ttl_s=3600, fields={"event": json.dumps(ev)}))


def test_overdue_hold_is_re_enqueued_once_and_then_decided(s, clean_redis):
    claim(s, "H1", lease_ms=1)       # a worker claimed it, then its message vanished
    claim(s, "H2", lease_ms=60_000)  # still within its lease: left alone
    wait_for(lambda: lease_over(with_store(s, lambda st: st.get_hold("H1"))))
    keys = Keys(s.redis.key_prefix)
    sent: list[dict] = []
    assert sweep_once(sweeps(s, clean_redis), sent.append, push_ms=60_000) == ["H1"]
    assert [e["hold_id"] for e in sent] == ["H1"]
    assert sweep_once(sweeps(s, clean_redis), sent.append, push_ms=60_000) == []  # taken once
    from worker.queue.actors import hold_ready
    with run_worker(s):
        hold_ready.send(sent[0])
        wait_for(lambda: with_store(s, lambda st: st.get_hold("H1")).get("status") == "phoned")
    # decided holds leave the in-flight index
    assert clean_redis.zscore(keys.inflight, "H1") is None
    assert clean_redis.zscore(keys.inflight, "H2") is not None


def test_a_hold_whose_stored_event_is_unreadable_still_reaches_the_call_list(s, clean_redis):
    with_store(s, lambda st: st.claim_hold("H5", token="tH5", lease_ms=1, ttl_s=3600, fields={
        "event": '{"event_id": "ev-H5", "type": "hold_ready", "hold_id": "H5", "ite',  # cut off
        "card_number": "C5", "pickup_branch": "tamari"}))
    wait_for(lambda: lease_over(with_store(s, lambda st: st.get_hold("H5"))))
    sent: list[dict] = []
    assert sweep_once(sweeps(s, clean_redis), sent.append, push_ms=60_000) == ["H5"]  # no exception
    from worker.queue.actors import hold_ready
    with run_worker(s):
        hold_ready.send(sent[0])
        wait_for(lambda: with_store(s, lambda st: st.calls()))
    [call] = with_store(s, lambda st: st.calls())
    assert (call["hold_id"], call["card_number"], call["pickup_branch"], call["reason"]) == (
        "H5", "C5", "tamari", "invalid_event")


def test_decided_or_closed_holds_are_dropped_from_the_index(s, clean_redis):
    claim(s, "H3", lease_ms=1)
    with_store(s, lambda st: st.close_hold("H3", "cancelled", 3600))
    keys = Keys(s.redis.key_prefix)
    assert clean_redis.zscore(keys.inflight, "H3") is None
    assert sweep_once(sweeps(s, clean_redis), lambda e: None, push_ms=1000) == []


def test_stranded_message_in_a_live_workers_ack_set_is_requeued(s, clean_redis):
    ns = s.redis.namespace
    rid = str(uuid.uuid4())
    ack = f"{ns}:__acks__.live-worker.notifications"
    clean_redis.hset(f"{ns}:notifications.msgs", rid, "{}")
    clean_redis.sadd(ack, rid)
    clean_redis.sadd(f"{ns}:__acks__.live-worker.notifications.DQ", "delayed-retry")
    watch = AckWatch(sweeps(s, clean_redis), "notifications")
    assert watch.requeue(older_than_s=10, now=100.0) == 0   # first sighting
    assert watch.requeue(older_than_s=10, now=105.0) == 0   # not long enough
    assert watch.requeue(older_than_s=10, now=111.0) == 1
    assert clean_redis.lrange(f"{ns}:notifications", 0, -1) == [rid]
    assert clean_redis.smembers(ack) == set()
    # a delayed retry (.DQ acks) is never touched
    assert clean_redis.smembers(f"{ns}:__acks__.live-worker.notifications.DQ") == {"delayed-retry"}
    assert watch.requeue(older_than_s=10, now=200.0) == 0


def test_a_message_acked_meanwhile_is_not_requeued(s, clean_redis):
    ns = s.redis.namespace
    ack = f"{ns}:__acks__.w.notifications"
    clean_redis.sadd(ack, "m1")
    clean_redis.hset(f"{ns}:notifications.msgs", "m1", "{}")
    watch = AckWatch(sweeps(s, clean_redis), "notifications")
    watch.requeue(older_than_s=10, now=0.0)
    clean_redis.srem(ack, "m1")          # processed and acknowledged after all
    clean_redis.hdel(f"{ns}:notifications.msgs", "m1")
    assert watch.requeue(older_than_s=10, now=50.0) == 0
    assert clean_redis.llen(f"{ns}:notifications") == 0


def test_overdue_delayed_retry_is_requeued_but_a_waiting_one_is_not(s, clean_redis):
    ns = s.redis.namespace
    ack = f"{ns}:__acks__.w.notifications.DQ"
    for mid, eta in (("late", 1_000), ("waiting", 10_000_000)):
        clean_redis.hset(f"{ns}:notifications.DQ.msgs", mid, json.dumps({"options": {"eta": eta}}))
        clean_redis.sadd(ack, mid)
    watch = AckWatch(sweeps(s, clean_redis), "notifications")
    assert watch.requeue_delayed(older_than_s=10, now_ms=100_000) == 1
    assert clean_redis.lrange(f"{ns}:notifications.DQ", 0, -1) == ["late"]
    assert clean_redis.smembers(ack) == {"waiting"}
