"""Every message is acknowledged exactly once, whatever id its payload claims, and no
message stays stored without ever being queued (real Redis, real worker)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from tests.helpers import hold_event, run_worker, variant, wait_for, with_store
from tests.test_raw_redis_producer import envelope, leftovers, raw_enqueue
from tests.test_sweeper import sweeps
from worker.queue.sweeper import AckWatch

CLEAN = {"queue": 0, "msgs": 0, "acks": 0, "dead": 0}


@pytest.fixture
def s(settings, clean_redis, tmp_path):
    return variant(settings, mail={"transport": "outbox", "outbox_dir": tmp_path / "out"})


@pytest.mark.parametrize("claimed", ["not-its-id", "SHARED", ""])
def test_a_wrong_redis_message_id_is_acknowledged_once(s, clean_redis, claimed):
    """The payload claims another id than the one it is stored under: the worker acks the
    true one (it used to ack nothing, and the sweeper re-queued it for ever)."""
    ns = s.redis.namespace
    with run_worker(s):
        for i in range(3):  # several messages may claim the same wrong id
            rid = str(uuid.uuid4())
            raw_enqueue(clean_redis, ns, envelope(
                "hold_ready", hold_event(f"H-{i}", f"C-{i}", contact="phone"), claimed), rid)
        wait_for(lambda: len(with_store(s, lambda st: st.calls())) == 3)
        wait_for(lambda: leftovers(clean_redis, ns) == CLEAN)
    assert with_store(s, lambda st: st.rejected()) == []


def test_a_backlog_without_ids_is_acknowledged_without_scanning_it(s, clean_redis):
    """A backlog of messages that carry no redis_message_id is worked off and acked;
    the worker never reads the queue's hash to find them (it used to, once per message)."""
    ns = s.redis.namespace
    n = 200
    p = clean_redis.pipeline(transaction=False)
    for i in range(n):
        rid = str(uuid.uuid4())
        p.hset(f"{ns}:notifications.msgs", rid,
               envelope("hold_ready", hold_event(f"H-{i}", f"C-{i}", contact="phone"), None))
        p.rpush(f"{ns}:notifications", rid)
    p.execute()
    before = _calls(clean_redis, "hscan")
    with run_worker(s):
        wait_for(lambda: leftovers(clean_redis, ns) == CLEAN, timeout=60)
    assert len(with_store(s, lambda st: st.calls())) == n
    # other engineers' runs share this Redis; ours alone would have made n HSCAN calls
    assert _calls(clean_redis, "hscan") - before < n // 2


def _calls(r, command: str) -> int:
    return int(r.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_two_sweepers_requeue_a_stranded_message_once(s, clean_redis):
    """Sweeper A re-queues a stranded message; a worker fetches it again into the same ack
    set; sweeper B, which saw it there all along, must not push it a second time."""
    ns = s.redis.namespace
    ack, queue = f"{ns}:__acks__.w.notifications", f"{ns}:notifications"
    clean_redis.hset(queue + ".msgs", "m1", "{}")
    clean_redis.sadd(ack, "m1")
    a, b = AckWatch(sweeps(s, clean_redis), "notifications"), AckWatch(sweeps(s, clean_redis), "notifications")
    assert a.requeue(older_than_s=10, now=0.0) == 0
    assert b.requeue(older_than_s=10, now=0.0) == 0
    assert a.requeue(older_than_s=10, now=20.0) == 1
    assert clean_redis.lpop(queue) == "m1"   # fetched again, by the same worker
    clean_redis.sadd(ack, "m1")
    assert b.requeue(older_than_s=10, now=20.5) == 0
    assert clean_redis.llen(queue) == 0


def test_an_orphan_message_is_adopted_after_the_grace_period(s, clean_redis):
    """A producer died between HSET and RPUSH: the message is stored but on no queue.
    After the grace period one sweeper queues it (once), and the worker then runs it."""
    ns = s.redis.namespace
    queue = f"{ns}:notifications"
    orphan = str(uuid.uuid4())
    clean_redis.hset(queue + ".msgs", orphan,
                     envelope("hold_ready", hold_event("H-O", "C-O", contact="phone"), orphan))
    raw_enqueue(clean_redis, ns, envelope("hold_ready", hold_event("H-Q", "C-Q"), None))  # queued
    clean_redis.sadd(f"{ns}:__acks__.w.notifications", "in-hand")  # fetched, being worked on
    clean_redis.hset(queue + ".msgs", "in-hand", "{}")
    a, b = AckWatch(sweeps(s, clean_redis), "notifications"), AckWatch(sweeps(s, clean_redis), "notifications")
    assert a.adopt_orphans(older_than_s=10, now=0.0) == 0  # first sighting
    assert b.adopt_orphans(older_than_s=10, now=0.0) == 0
    assert a.adopt_orphans(older_than_s=10, now=5.0) == 0  # within the grace
    assert a.adopt_orphans(older_than_s=10, now=11.0) == 1
    assert b.adopt_orphans(older_than_s=10, now=11.0) == 0  # queued already
    assert clean_redis.lrange(queue, 0, -1)[-1] == orphan and clean_redis.llen(queue) == 2
    clean_redis.srem(f"{ns}:__acks__.w.notifications", "in-hand")
    clean_redis.hdel(queue + ".msgs", "in-hand")
    with run_worker(s):
        wait_for(lambda: with_store(s, lambda st: st.get_hold("H-O")).get("status") == "phoned")
        wait_for(lambda: leftovers(clean_redis, ns) == CLEAN)


def test_an_orphan_on_the_delayed_queue_is_adopted_too(s, clean_redis):
    ns = s.redis.namespace
    dq = f"{ns}:notifications.DQ"
    clean_redis.hset(dq + ".msgs", "late", json.dumps({"options": {"eta": 1}}))
    watch = AckWatch(sweeps(s, clean_redis), "notifications")
    watch.adopt_orphans(older_than_s=1, now=0.0)
    assert watch.adopt_orphans(older_than_s=1, now=2.0) == 1
    assert clean_redis.lrange(dq, 0, -1) == ["late"]
    assert watch.adopt_orphans(older_than_s=1, now=time.monotonic()) == 0



@pytest.fixture
def our_decoder():
    """The worker's decoder (it sets the id a message is stored under), restored after."""
    import dramatiq

    from worker.queue.envelope import EnvelopeEncoder
    before = dramatiq.get_encoder()
    dramatiq.set_encoder(EnvelopeEncoder(lambda: {"hold_ready"}))
    yield
    dramatiq.set_encoder(before)

def test_a_finished_message_is_acknowledged_with_the_next_fetch(s, clean_redis, our_decoder):
    """dramatiq acknowledged each message in a Redis round trip of its own; the consumer
    now notes the id and the next fetch acknowledges it (or closing the consumer, or a
    full batch) — until then the message is in the worker's ack set, as while it ran."""
    from worker.queue.fetch import AckOnFetch, Broker

    ns = s.redis.namespace
    broker = Broker(url=s.redis.url, namespace=ns)
    consumer = broker.consume("notifications", prefetch=1, timeout=50)
    assert isinstance(consumer, AckOnFetch)
    acks = f"{ns}:__acks__.{broker.broker_id}.notifications"
    stored = lambda rid: (clean_redis.sismember(acks, rid),  # noqa: E731
                          clean_redis.hexists(f"{ns}:notifications.msgs", rid))
    try:
        rids = [raw_enqueue(clean_redis, ns, envelope(
            "hold_ready", hold_event(f"H-{i}", f"C-{i}"), None)) for i in range(2)]
        first = next(consumer)
        assert first.options["redis_message_id"] == rids[0]
        consumer.ack(first)
        assert stored(rids[0]) == (True, True)  # noted, no round trip yet
        second = next(consumer)  # this fetch acknowledges the first
        assert stored(rids[0]) == (False, False) and stored(rids[1]) == (True, True)
        consumer.ack(second)
    finally:
        consumer.close()  # acknowledges what is noted
    assert stored(rids[1]) == (False, False)
    assert leftovers(clean_redis, ns) == CLEAN
    broker.close()


def test_noted_acknowledgements_survive_a_failed_fetch(s, clean_redis, our_decoder):
    """Redis away during the fetch that carries them: the ids stay noted and go with the
    next fetch that succeeds — a message is never left unacknowledged for ever."""
    from worker.queue.fetch import Broker

    ns = s.redis.namespace
    broker = Broker(url=s.redis.url, namespace=ns)
    consumer = broker.consume("notifications", prefetch=1, timeout=50)
    try:
        raw_enqueue(clean_redis, ns, envelope("hold_ready", hold_event("H-1", "C-1"), None))
        consumer.ack(next(consumer))
        real = broker._fetch
        broker._fetch = lambda **kw: (_ for _ in ()).throw(ConnectionError("Redis away"))
        with pytest.raises(Exception):
            next(consumer)
        broker._fetch = real
        assert next(consumer) is None  # nothing left to fetch; the ack went with it
        assert leftovers(clean_redis, ns) == CLEAN
    finally:
        consumer.close()
        broker.close()


def test_a_planned_retry_is_requeued_without_a_traceback_or_an_info_line(s, clean_redis,
                                                                         caplog):
    """A hold waiting in its digest window (or busy, or after a 4xx) raises dramatiq.Retry:
    the message goes to the delayed queue with its retry counted, as dramatiq does — but
    without the traceback dramatiq formatted into it and the INFO line it logged per
    message (the digest path paid both for every hold, twice)."""
    import logging

    import dramatiq
    from dramatiq import Message

    from worker.queue.fetch import Broker
    from worker.queue.retries import PatientRetries

    ns = s.redis.namespace
    broker = Broker(url=s.redis.url, namespace=ns)
    broker.declare_queue("notifications")
    broker.declare_actor(dramatiq.Actor(lambda e: None, broker=broker, actor_name="hold_ready",
                                        queue_name="notifications", priority=0, options={}))
    msg = Message(queue_name="notifications", actor_name="hold_ready",
                  args=(hold_event("H-1", "C-1"),), kwargs={},
                  options={"redis_message_id": "r1", "traceback": "an earlier error"})
    try:
        raise dramatiq.Retry("gathering", delay=5000)
    except dramatiq.Retry as e:
        with caplog.at_level(logging.INFO):
            PatientRetries().after_process_message(broker, msg, exception=e)
    [rid] = clean_redis.hkeys(f"{ns}:notifications.DQ.msgs")
    queued = json.loads(clean_redis.hget(f"{ns}:notifications.DQ.msgs", rid))
    assert queued["options"]["retries"] == 1 and "traceback" not in queued["options"]
    assert queued["options"]["eta"] >= queued["options"]["requeue_timestamp"] + 5000 - 5
    assert not [r for r in caplog.records if r.levelno >= logging.INFO]
    broker.close()
