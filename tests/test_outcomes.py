"""The outcome stream (issue 13, item 4): every outcome of a hold, written by the script
that changes the hold's state, and read by an ILS with raw Redis commands only."""

from __future__ import annotations

import asyncio
import re

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from worker.contact import ContactState

ISO_JST = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+09:00$")
FIELDS = {"hold_id", "card_number", "outcome", "reason", "message_id", "at"}


@pytest.fixture
def smtp_settings(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})


def outcomes(rclient, settings) -> list[dict[str, str]]:
    rows = rclient.xrange(f"{settings.redis.key_prefix}outcomes")
    for _, f in rows:
        assert set(f) == FIELDS and ISO_JST.match(f["at"]), f
    return [f for _, f in rows]


def short(rows: list[dict[str, str]]) -> list[tuple[str, str, str]]:
    return [(r["hold_id"], r["outcome"], r["reason"]) for r in rows]


def send(event: dict) -> None:
    from worker.queue.actors import hold_ready
    hold_ready.send(event)


def status(settings, hold_id: str) -> str | None:
    return with_store(settings, lambda s: s.get_hold(hold_id)).get("status")


def test_mailed_listed_bounced_called_uncalled_closed(smtp_settings, smtp_sink, rclient):
    async def setup(store):
        await set_contact(store, "C-1", ContactState.ACTIVE, address="taro@docomo.ne.jp")
        await set_contact(store, "C-3", ContactState.ACTIVE, address="bad@ezweb.ne.jp")
    with_store(smtp_settings, setup)
    smtp_sink.refuse("bad@ezweb.ne.jp", "550 5.1.1 <bad@ezweb.ne.jp>: user unknown")
    with run_worker(smtp_settings):
        send(hold_event("H-1", "C-1"))
        send(hold_event("H-2", "C-2", contact="phone"))
        send(hold_event("H-3", "C-3"))
        for h, want in (("H-1", "sent"), ("H-2", "phoned"), ("H-3", "phoned")):
            wait_for(lambda: status(smtp_settings, h) == want)
    rows = outcomes(rclient, smtp_settings)
    by_hold = {h: [r for r in rows if r["hold_id"] == h] for h in ("H-1", "H-2", "H-3")}
    [mailed] = by_hold["H-1"]
    assert mailed["outcome"] == "mailed" and mailed["card_number"] == "C-1"
    assert mailed["message_id"] == with_store(smtp_settings, lambda s: s.get_hold("H-1"))["message_id"]
    assert short(by_hold["H-2"]) == [("H-2", "listed", "chose_phone")]
    assert short(by_hold["H-3"]) == [("H-3", "bounced", "bounced"), ("H-3", "listed", "bounced")]

    from worker.app.calls import mark_called, uncall

    async def staff(store):
        await mark_called(store, "H-2", "S01")
        await uncall(store, "H-2", "S01")
        await mark_called(store, "H-2", "S01")
        await store.close_hold("H-1", "picked_up", ttl_s=60)
        await store.close_hold("H-1", "picked_up", ttl_s=60)   # a duplicate event: no outcome
        await store.close_hold("H-9", "cancelled", ttl_s=60)   # never seen: told all the same
    with_store(smtp_settings, staff)
    assert short(outcomes(rclient, smtp_settings)[len(rows):]) == [
        ("H-2", "called", ""), ("H-2", "listed", "chose_phone"), ("H-2", "called", ""),
        ("H-1", "picked_up", ""), ("H-9", "cancelled", "")]


def test_a_bounce_after_sending_is_bounced_then_listed(smtp_settings, smtp_sink, rclient):
    with_store(smtp_settings, lambda s: set_contact(s, "C-1", ContactState.ACTIVE,
                                                    address="taro@docomo.ne.jp"))
    with run_worker(smtp_settings):
        send(hold_event("H-1", "C-1"))
        wait_for(lambda: status(smtp_settings, "H-1") == "sent")
    mid = with_store(smtp_settings, lambda s: s.get_hold("H-1"))["message_id"]

    async def bounce(store):
        bs = store.bounces
        call = {"hold_id": "H-1", "card_number": "C-1", "reason": "bounced"}
        assert await bs.rephone("H-1", call, 20991205, "bounced") == "phoned"
        # a second bounce of the same mail: already listed, nothing new to tell
        assert await bs.rephone("H-1", call, 20991205, "bounced") == "phoned"
    with_store(smtp_settings, bounce)
    rows = outcomes(rclient, smtp_settings)
    assert short(rows) == [("H-1", "mailed", ""), ("H-1", "bounced", "bounced"),
                           ("H-1", "listed", "bounced")]
    assert rows[1]["message_id"] == mid


def test_a_fenced_out_finish_writes_no_outcome(settings, clean_redis, rclient):
    """A claim whose lease was taken over records nothing — and tells the ILS nothing."""
    async def go(store):
        fields = {"card_number": "C-1"}
        first = await store.claim_hold("H-1", token="a" * 32, lease_ms=1, ttl_s=60, fields=fields)
        await asyncio.sleep(0.01)  # the first lease (1 ms) is over
        second = await store.claim_hold("H-1", token="b" * 32, lease_ms=60_000, ttl_s=60,
                                        fields=fields)
        assert first.verdict == second.verdict == "claimed"
        assert await store.finish_hold("H-1", "sent", first.token, card="C-1",
                                       fields={"message_id": "<old>"}) == "lost"
        assert await store.finish_hold("H-1", "retrying", second.token, due=1) == "retrying"
        assert await store.close_hold("H-1", "cancelled", ttl_s=60) == "retrying"
        # the claim finishing after the hold was cancelled: the hold stays cancelled
        assert await store.finish_hold("H-1", "sent", second.token, card="C-1") == "cancelled"
    with_store(settings, go)
    assert short(outcomes(rclient, settings)) == [("H-1", "cancelled", "")]


OPS = st.lists(st.sampled_from(["sent", "phoned", "retrying", "cancel", "pickup", "called",
                                "uncall", "rephone"]), min_size=1, max_size=12)


@hsettings(max_examples=40, deadline=None,
           suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_every_state_change_has_its_outcome_and_no_other(settings, clean_redis, rclient, ops):
    """Generated sequences of everything that can happen to one hold: after each step,
    an outcome was appended exactly when the hold's state changed, and it names that state."""
    key = f"{settings.redis.key_prefix}outcomes"
    hold_id = f"H-{rclient.incr(settings.redis.key_prefix + 'seq')}"
    expect = {"sent": "mailed", "phoned": "listed", "called": "called",
              "cancelled": "cancelled", "picked_up": "picked_up"}

    async def go(store):
        claim = await store.claim_hold(hold_id, token=f"{hold_id}-t", lease_ms=60_000,
                                       ttl_s=60, fields={"card_number": "C-1"})
        for op in ops:
            before = await store.get_hold(hold_id)
            last = await store.r.xrevrange(key, count=1)
            if op in ("sent", "phoned", "retrying"):
                await store.finish_hold(hold_id, op, claim.token, card="C-1",
                                        call={"hold_id": hold_id, "card_number": "C-1"},
                                        due=1, fields={"reason": "chose_phone"})
            elif op in ("cancel", "pickup"):
                await store.close_hold(hold_id, "cancelled" if op == "cancel" else "picked_up",
                                       ttl_s=60)
            elif op == "called":
                await store.mark_called(hold_id, {"hold_id": hold_id, "staff": "S"}, {"kind": "called"})
            elif op == "uncall":
                await store.uncall(hold_id, {"hold_id": hold_id, "staff": "S"}, {"kind": "uncalled"})
            else:
                await store.bounces.rephone(hold_id, {"hold_id": hold_id}, 1, "bounced")
            after = await store.get_hold(hold_id)
            new = [f for _, f in await store.r.xrange(key, f"({last[0][0]}" if last else "-")]
            changed = (before.get("status"), before.get("closed")) != (
                after.get("status"), after.get("closed"))
            if not changed or after.get("status") == "retrying":
                assert new == [], (op, before, after)
                continue
            assert new, (op, before, after)
            assert all(f["hold_id"] == hold_id and f["card_number"] == "C-1" for f in new)
            state = after.get("closed") if after.get("closed") != before.get("closed") \
                else after["status"]
            assert new[-1]["outcome"] == expect[state], (op, before, after, new)
    with_store(settings, go)


def test_the_documented_consumer_group_recipe_with_raw_redis(settings, clean_redis, rclient):
    """docs/ils-integration.md, "The outcome stream", step by step with raw commands only:
    what an ILS in any language does."""
    import redis

    stream = f"{settings.redis.key_prefix}outcomes"
    # a bare connection: commands go out as written and replies come back as Redis sends
    # them (redis-py's client would reshape XREADGROUP's reply)
    conn = redis.Connection(**{**redis.Redis.from_url(settings.redis.url).connection_pool
                               .connection_kwargs, "decode_responses": True,
                               "protocol": 2})  # RESP2, as redis-cli and most clients

    def cmd(*args):
        conn.send_command(*args)
        return conn.read_response()
    assert cmd("XGROUP", "CREATE", stream, "ils", "$", "MKSTREAM") == "OK"

    async def worker_side(store):  # what the worker does meanwhile
        for h in ("H-1", "H-2", "H-3"):
            await store.close_hold(h, "picked_up", ttl_s=60)
    with_store(settings, worker_side)

    def entries(reply) -> list[tuple[str, dict[str, str]]]:
        # XREADGROUP replies [[stream, [[id, [field, value, ...]], ...]]]
        [[name, rows]] = reply
        assert name == stream
        return [(i, dict(zip(f[::2], f[1::2]))) for i, f in rows]

    got = entries(cmd("XREADGROUP", "GROUP", "ils", "ils-1", "COUNT", "2",
                      "STREAMS", stream, ">"))
    assert [f["hold_id"] for _, f in got] == ["H-1", "H-2"]
    assert all(f["outcome"] == "picked_up" and ISO_JST.match(f["at"]) for _, f in got)
    # the ILS crashed before XACK: on restart it reads its own pending entries first (ID 0)
    again = entries(cmd("XREADGROUP", "GROUP", "ils", "ils-1", "STREAMS", stream, "0"))
    assert again == got
    assert cmd("XACK", stream, "ils", *[i for i, _ in got]) == 2
    assert entries(cmd("XREADGROUP", "GROUP", "ils", "ils-1", "STREAMS", stream, "0")) == []
    rest = entries(cmd("XREADGROUP", "GROUP", "ils", "ils-1", "BLOCK", "100",
                       "STREAMS", stream, ">"))
    assert [f["hold_id"] for _, f in rest] == ["H-3"]
    assert cmd("XACK", stream, "ils", rest[0][0]) == 1
    assert cmd("XPENDING", stream, "ils")[0] == 0
    # nothing new: a blocking read times out with nil
    assert cmd("XREADGROUP", "GROUP", "ils", "ils-1", "BLOCK", "50",
               "STREAMS", stream, ">") is None
    conn.disconnect()


def test_the_stream_is_trimmed_to_about_maxlen(settings, clean_redis, rclient):
    from worker.store.core import Store

    async def go():
        store = Store.connect(settings.redis.url, settings.redis.key_prefix, outcomes_maxlen=100)
        try:
            for i in range(700):
                await store.close_hold(f"H-{i}", "cancelled", ttl_s=60)
        finally:
            await store.close()
    asyncio.run(go())
    n = rclient.xlen(f"{settings.redis.key_prefix}outcomes")
    assert 100 <= n < 300
    [(_, last)] = rclient.xrevrange(f"{settings.redis.key_prefix}outcomes", count=1)
    assert last["hold_id"] == "H-699"
