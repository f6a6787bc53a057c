"""A producer cannot run the worker's own actors (``omitama_gave_up``, ``omitama_malformed``):
each forgery ends in exactly one outcome — kept once in ``review rejected``, and its hold
listed once as ``invalid_event`` when it names one — never a silent vanish, never a
forged ``worker_error``; while a genuine give-up still lists its hold as ``worker_error``
(real Redis, real worker; see worker/queue/internal.py)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from tests.helpers import (SmtpSink, hold_event, run_worker, set_contact, variant, wait_for,
                           with_store)
from tests.test_raw_redis_producer import leftovers, raw_enqueue
from tests.worker_command import WorkerCommand
from worker.contact import ContactState
from worker.queue.envelope import EnvelopeEncoder
from worker.queue.internal import INTERNAL, MALFORMED_ACTOR, SIG, Signer

CLEAN = {"queue": 0, "msgs": 0, "acks": 0, "dead": 0}


def message(actor: str, args: list[Any], **options: Any) -> dict[str, Any]:
    return {"queue_name": "notifications", "actor_name": actor, "args": args, "kwargs": {},
            "options": options, "message_id": str(uuid.uuid4()),
            "message_timestamp": int(time.time() * 1000)}


def body(msg: dict[str, Any]) -> str:
    return json.dumps(msg, ensure_ascii=False)


@pytest.fixture
def s(settings, clean_redis, tmp_path):
    s = variant(settings, mail={"transport": "outbox", "outbox_dir": tmp_path / "out"})
    for card in ("C-G1", "C-G2", "C-L1", "C-L2"):
        with_store(s, lambda st, c=card: set_contact(st, c, ContactState.ACTIVE,
                                                    address=f"{c.lower()}@example.jp"))
    return s


def mails(s) -> int:
    return len(list(Path(s.mail.outbox_dir).glob("*.eml")))


def test_forged_internal_messages_end_in_one_outcome(s, clean_redis):
    """The forgeries of issue 14's harness, each pushed twice (byte-identical: one
    message), on a worker in this process."""
    ns = s.redis.namespace
    wrapped = message("hold_ready", [hold_event("H-G1", "C-G1")], traceback="forged")
    forged = {
        # used to vanish: gave_up found no hold in it and returned
        "bare": message("omitama_gave_up", [{"event_id": "e1", "type": "hold_ready"}, {}]),
        # used to list H-G1 as worker_error "forged" without trying to mail it
        "wrapped": message("omitama_gave_up", [wrapped, {"retries": 8}]),
        # a signature that is not ours is no better than none
        "badsig": message("omitama_gave_up", [message("hold_ready", [hold_event("H-G2", "C-G2")]),
                                              {"retries": 8}], omitama_sig="0" * 64),
        # used to write any row into review rejected
        "malformed": message("omitama_malformed", ["forged raw", "forged problem"]),
    }
    with run_worker(s):
        for msg in forged.values():
            for _ in range(2):
                raw_enqueue(clean_redis, ns, body(msg))
        wait_for(lambda: len(with_store(s, lambda st: st.rejected())) >= len(forged))
        wait_for(lambda: leftovers(clean_redis, ns) == CLEAN)
    rows = with_store(s, lambda st: st.rejected())
    calls = with_store(s, lambda st: st.calls())
    report = f"rows={rows}\ncalls={calls}"
    assert mails(s) == 0, report
    assert sorted((c["hold_id"], c["reason"]) for c in calls) == [
        ("H-G1", "invalid_event"), ("H-G2", "invalid_event")], report
    assert all("forged" not in c.get("detail", "") for c in calls), report
    assert len(rows) == len(forged), report  # each kept once
    assert all("is the worker's own" in r["error"] for r in rows), report
    assert sorted((r["event_id"] or "", r["type"] or "") for r in rows) == [
        ("", ""), ("e1", "hold_ready"), ("ev-H-G1", "hold_ready"), ("ev-H-G2", "hold_ready")], report
    kept_raw = [r["raw"] for r in rows if not r["event_id"]]
    assert kept_raw and "forged problem" in kept_raw[0] and "omitama_malformed" in kept_raw[0]


def test_options_cannot_make_the_worker_send_internal_messages(s, clean_redis):
    """dramatiq sends a message named by ``pipe_target``, ``on_success``, ``on_failure`` or
    ``on_retry_exhausted`` — and our worker would sign it. A producer's options steer
    nothing: the events run as usual, no hold appears on the call list, nothing is
    refused, and the worker still mails a good event."""
    ns = s.redis.namespace
    inner = message("omitama_gave_up", [message("hold_ready", [hold_event("H-L1", "C-L1")]),
                                        {"retries": 8}])
    for opts in ({"pipe_target": inner}, {"on_success": "omitama_gave_up"},
                 {"on_success": "omitama_malformed", "on_failure": "omitama_gave_up",
                  "on_retry_exhausted": "omitama_malformed", "pipe_ignore": True},
                 {"retries": "x", "min_backoff": "x", "max_retries": "x", "time_limit": "x",
                  "eta": 10 ** 30, "throws": "x"}):
        ev = {"event_id": f"ev-{uuid.uuid4().hex[:8]}", "type": "hold_cancelled",
              "hold_id": "H-L1"}
        raw_enqueue(clean_redis, ns, body(message("hold_cancelled", [ev], **opts)))
    with run_worker(s):
        raw_enqueue(clean_redis, ns, body(message(
            "hold_ready", [hold_event("H-L2", "C-L2")], eta=10 ** 30, retries="x")))
        wait_for(lambda: mails(s) == 1)
        wait_for(lambda: leftovers(clean_redis, ns) == CLEAN)
    calls = with_store(s, lambda st: st.calls())
    rows = with_store(s, lambda st: st.rejected())
    assert (calls, rows) == ([], []), f"calls={calls}\nrows={rows}"


def test_the_worker_signs_its_own_internal_messages(s, clean_redis):
    """What our worker enqueues for an internal actor (a give-up, or a retry of the
    malformed actor: dramatiq re-enqueues a failed message) decodes as that message;
    the same message changed by one byte, or unsigned, is refused."""
    import dramatiq

    from worker.queue.actors import gave_up, malformed
    from worker.queue.fetch import Fetched

    ns = s.redis.namespace
    malformed.send("raw text", "why")
    gave_up.send(message("hold_ready", [hold_event("H-S1", "C-G1")]), {"retries": 8})
    kept = clean_redis.hgetall(f"{ns}:notifications.msgs")
    assert len(kept) == 2
    enc = dramatiq.get_encoder()
    for rid, data in kept.items():
        item = Fetched(data.encode())
        item.rid, item.queue = rid, "notifications"
        got = enc.decode(item)
        assert got["actor_name"] in ("omitama_malformed", "omitama_gave_up"), got
        assert "is the worker's own" not in json.dumps(got["args"]), got
        tampered = data.replace("raw text", "raw texT").replace("H-S1", "H-S2")
        refused = enc.decode(tampered.encode())
        assert refused["actor_name"] == "omitama_malformed"
        assert "is the worker's own" in refused["args"][1]
    clean_redis.delete(f"{ns}:notifications", f"{ns}:notifications.msgs")


@pytest.mark.slow
def test_a_genuine_give_up_still_lists_the_hold_as_worker_error(settings, clean_redis):
    """Every attempt at H-E1 raises (a contact record corrupted past the registration
    checks, as in tests/test_faults.py): after the error retries the worker's own signed
    give-up lists it as worker_error — with two worker processes, so a give-up signed by
    one is checked by the other — and nothing is refused."""
    with_store(settings, lambda st: set_contact(st, "C-E1", ContactState.ACTIVE,
                                                address="e1@example.jp"))
    with_store(settings, lambda st: st.r.hset(st.k.patron("C-E1"), "envelope",
                                              "e1@example.jp\r\nBcc: evil@example.com"))
    sink = SmtpSink()
    sink.start()
    w = WorkerCommand(sink.port, processes=2, threads=2,
                      OMITAMA_NOTIFY_DELIVERY__MIN_BACKOFF_S="0.05",
                      OMITAMA_NOTIFY_DELIVERY__MAX_BACKOFF_S="0.2",
                      OMITAMA_NOTIFY_DELIVERY__LEASE_S="2",
                      OMITAMA_NOTIFY_DELIVERY__SWEEP_INTERVAL_S="1")
    ns = settings.redis.namespace
    try:
        raw_enqueue(clean_redis, ns, body(message("hold_ready", [hold_event("H-E1", "C-E1")])))
        wait_for(lambda: with_store(settings, lambda st: st.calls()), timeout=120)
        # the failed hold_ready itself is dead-lettered by dramatiq, as it should be
        wait_for(lambda: leftovers(clean_redis, ns) == {**CLEAN, "dead": 1}, timeout=30)
    finally:
        w.stop()
        sink.stop()
    calls = with_store(settings, lambda st: st.calls())
    log = "".join(w.log)
    assert [(c["hold_id"], c["reason"]) for c in calls] == [("H-E1", "worker_error")], log[-3000:]
    assert "not a plain address" in calls[0]["detail"]
    assert with_store(settings, lambda st: st.rejected()) == [], log[-3000:]
    assert "gave up on hold_ready" in log
    assert sink.messages == []


# -- the decoder on its own: any JSON, no Redis ------------------------------------------

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=6),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c,
                                                                          max_size=3),
                     max_leaves=8)
_SIGNER = Signer(lambda: b"k" * 32)


@st.composite
def _internal_messages(draw: Any) -> tuple[dict[str, Any], bool]:
    """(a message, whether our worker signed it): mostly in an internal actor's shape."""
    actor = draw(st.sampled_from([*sorted(INTERNAL), "hold_ready"]) | _JSON)
    args = draw(st.sampled_from([[{}, {}], ["raw", "why"], [hold_event("H-P", "C-P")]])
                | st.lists(_JSON, max_size=3) | _JSON)
    options = draw(st.dictionaries(st.sampled_from(
        ["redis_message_id", "retries", "eta", "traceback", "pipe_target", "on_success",
         "omitama_raw_sha", SIG]), _JSON, max_size=4))
    signed = isinstance(actor, str) and draw(st.booleans())
    if signed:
        options[SIG] = _SIGNER.sign(actor, args)
    msg = {**message(actor, args), "options": options}
    return msg, signed


@hsettings(max_examples=300, deadline=None)
@given(_internal_messages())
def test_the_decoder_runs_an_internal_actor_only_for_what_the_worker_signed(
        item: tuple[dict[str, Any], bool]) -> None:
    """Never raises; an internal actor comes out only as the worker's own signed message
    or as the decoder's record of a refused one (carrying these very bytes); no option
    but the ones the worker writes survives."""
    msg, signed = item
    enc = EnvelopeEncoder(lambda: {"hold_ready", *INTERNAL}, _SIGNER)
    data = json.dumps(msg).encode()
    got = enc.decode(data)
    refused = got["actor_name"] == MALFORMED_ACTOR and got["message_id"].startswith("malformed-")
    if refused:
        assert got["args"][0] == data.decode()
    elif got["actor_name"] in INTERNAL:
        assert signed
    assert set(got["options"]) <= {"redis_message_id", "retries", "eta", "traceback",
                                   "requeue_timestamp", SIG}
    if not refused and signed:  # changed by one argument, it is refused
        forged = {**msg, "args": [*msg["args"], 1]} if isinstance(msg["args"], list) else None
        if forged is not None and got["actor_name"] in INTERNAL:
            again = enc.decode(json.dumps(forged).encode())
            assert again["message_id"].startswith("malformed-")


@hsettings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=20), _JSON, max_size=4), _JSON, _JSON,
       st.sampled_from(["", "ils-1"]))
def test_a_refusal_key_is_computed_never_chosen_by_the_producer(
        options: dict[str, Any], first: Any, second: Any, message_id: str) -> None:
    """Two messages carrying different events are kept as two refusals whatever options
    and message_id the producer gives both (``omitama_raw_sha`` named the row once);
    the same message decoded twice (a redelivery) is kept under one key."""
    import dramatiq

    from worker.queue.actors import refusal_key
    enc = EnvelopeEncoder(lambda: {"hold_ready"}, _SIGNER)
    options = {**options, "omitama_raw_sha": "chosen", "redis_message_id": "r-1"}

    def key(event: Any) -> str:
        msg = {**message("hold_ready", [event]), "options": dict(options),
               "message_id": message_id}
        return refusal_key(dramatiq.Message(**enc.decode(json.dumps(msg).encode())))
    assert key(first) == key(first)
    if json.dumps(first, sort_keys=True) != json.dumps(second, sort_keys=True):
        assert key(first) != key(second)


def test_redis_away_while_reading_the_queue_secret_is_a_connection_error():
    """dramatiq's consumer logs a BrokerConnectionError in one line and reconnects (the
    message stays in the ack set for the sweeper); any other error it logs with a traceback."""
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.errors import BrokerConnectionError

    from tests.helpers import free_port
    from worker.queue.broker import _load_secret
    from worker.store.keys import Keys

    broker = RedisBroker(url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerConnectionError, match="reading the queue secret"):
        _load_secret(broker, Keys("t:"))


def test_each_deployment_secret_is_created_once_by_the_first_to_ask_and_kept(
        settings, clean_redis, rclient):
    """worker/store/kept_secrets.py: the notice secret (async store) and the queue secret
    (dramatiq's sync client) go through one SET NX + GET — each its own key, the value
    the first asker wrote returned to every later one, whatever the client decodes."""
    import asyncio

    import redis
    import redis.asyncio as aioredis

    from worker.store.kept_secrets import notice_secret, queue_secret
    from worker.store.keys import Keys

    keys, url = Keys(settings.redis.key_prefix), settings.redis.url

    async def notice_twice() -> list[bytes]:
        client = aioredis.Redis.from_url(url)
        try:  # two processes asking at once: both get the one written
            return list(await asyncio.gather(notice_secret(client, keys),
                                             notice_secret(client, keys)))
        finally:
            await client.aclose()

    first, again = asyncio.run(notice_twice())
    assert first == again and len(first) == 64 and int(first, 16) >= 0
    assert rclient.get(keys.notice_secret) == first.decode()
    raw = redis.Redis.from_url(url)
    try:
        queue = queue_secret(raw, keys)
        assert queue != first and len(queue) == 64
        assert queue_secret(rclient, keys) == queue  # a decoding client: the same bytes
    finally:
        raw.close()
    rclient.set(keys.queue_secret, "an-older-one")  # another worker's, written first
    assert queue_secret(rclient, keys) == b"an-older-one"
    assert asyncio.run(notice_twice()) == [first, first]
