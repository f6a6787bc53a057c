"""What a non-Python ILS does: raw Redis commands only (HSET + RPUSH in MULTI), as in the README.

Also what it may get wrong: malformed JSON, a missing redis_message_id, an
unknown actor, a bad event. Each ends in ``review rejected`` once (or, for the
missing id, is processed and acknowledged), nothing is stranded, and the worker
goes on with the next good event.
"""

from __future__ import annotations

import email
import email.policy
import json
import time
import uuid

import pytest

from tests.helpers import hold_event, run_worker, wait_for, with_store
from tests.helpers import set_contact
from worker.contact import ContactState


def raw_enqueue(r, ns: str, body: str, rid: str | None = None) -> str:
    """Exactly the README recipe: HSET the message, then RPUSH its id, in one MULTI."""
    rid = rid or str(uuid.uuid4())
    p = r.pipeline(transaction=True)
    p.hset(f"{ns}:notifications.msgs", rid, body)
    p.rpush(f"{ns}:notifications", rid)
    p.execute()
    return rid


def envelope(actor: str, event, rid: str | None, **extra) -> str:
    options = {"redis_message_id": rid} if rid else {}
    msg = {"queue_name": "notifications", "actor_name": actor, "args": [event], "kwargs": {},
           "options": options, "message_id": str(uuid.uuid4()),
           "message_timestamp": int(time.time() * 1000), **extra}
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


def leftovers(r, ns: str) -> dict[str, int]:
    acks = sum(r.scard(k) for k in r.scan_iter(f"{ns}:__acks__*"))
    return {"queue": r.llen(f"{ns}:notifications"), "msgs": r.hlen(f"{ns}:notifications.msgs"),
            "acks": acks, "dead": r.zcard(f"{ns}:notifications.XQ")}


@pytest.fixture
def outbox_settings(settings, clean_redis, tmp_path):
    from tests.helpers import variant
    return variant(settings, mail={"transport": "outbox", "outbox_dir": tmp_path / "outbox"})


def test_raw_redis_hold_ready_lands_in_outbox(outbox_settings, clean_redis):
    s = outbox_settings
    with_store(s, lambda st: set_contact(st, "C-1", ContactState.ACTIVE, address="taro@docomo.ne.jp"))
    ns = s.redis.namespace
    with run_worker(s):
        rid = str(uuid.uuid4())
        raw_enqueue(clean_redis, ns, envelope("hold_ready", hold_event("H-1", "C-1"), rid), rid)
        files = wait_for(lambda: list(s.outbox_dir.glob("*.eml")))
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
    [f] = files
    msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "taro@docomo.ne.jp"
    assert "吾輩は猫である" in msg.get_content()
    assert not list((s.outbox_dir / ".tmp").iterdir())  # nothing half-written left behind


BAD_MESSAGES = [
    ("not json{", "not valid UTF-8 JSON"),
    (b"\xff\xfe binary".decode("latin-1"), "not valid UTF-8 JSON"),
    ("[1, 2, 3]", "must be a JSON object"),
    ('{"queue_name":"notifications","actor_name":"hold_readyy","args":[{}],"kwargs":{},"options":{}}',
     "actor_name 'hold_readyy' is not an event type"),
    ('{"queue_name":"notifications","actor_name":"hold_ready","args":[],"kwargs":{},"options":{}}',
     "exactly one event object"),
    ('{"queue_name":"notifications","actor_name":"hold_ready","args":[{}],"kwargs":{"x":1},"options":{}}',
     "kwargs must be an empty object"),
    ('{"actor_name":"hold_ready","args":[{}],"kwargs":{},"options":{}}', "queue_name is missing"),
    ('{"queue_name":"notifications","actor_name":"hold_ready","args":[{}],"kwargs":{},"options":{},"bogus":1}',
     "unknown message field"),
]


@pytest.mark.parametrize("body,expected", BAD_MESSAGES)
def test_malformed_message_is_kept_once_and_worker_goes_on(outbox_settings, clean_redis, body, expected):
    s = outbox_settings
    ns = s.redis.namespace
    with run_worker(s):
        raw_enqueue(clean_redis, ns, body)
        # a good event behind it is still processed
        rid = str(uuid.uuid4())
        raw_enqueue(clean_redis, ns, envelope("hold_ready", hold_event("H-2", "C-2", contact="phone"), rid), rid)
        wait_for(lambda: with_store(s, lambda st: st.calls()))
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
    [row] = with_store(s, lambda st: st.rejected())
    assert expected in row["error"]
    assert row["raw"].startswith(body[:5])


def test_missing_redis_message_id_is_recovered_and_acked(outbox_settings, clean_redis):
    s = outbox_settings
    ns = s.redis.namespace
    with run_worker(s):
        raw_enqueue(clean_redis, ns, envelope("hold_ready", hold_event("H-3", "C-3", contact="phone"), None))
        wait_for(lambda: with_store(s, lambda st: st.get_hold("H-3")).get("status") == "phoned")
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
    assert with_store(s, lambda st: st.rejected()) == []


def test_invalid_event_in_valid_envelope_is_rejected_once(outbox_settings, clean_redis):
    s = outbox_settings
    ns = s.redis.namespace
    bad = hold_event("H-4", "C-4", pickup_branch="tokyo")
    with run_worker(s):
        rid = str(uuid.uuid4())
        raw_enqueue(clean_redis, ns, envelope("hold_ready", bad, rid), rid)
        wait_for(lambda: with_store(s, lambda st: st.rejected()))
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
    [row] = with_store(s, lambda st: st.rejected())
    assert row["event_id"] == "ev-H-4" and row["type"] == "hold_ready"
    assert "pickup_branch: unknown branch 'tokyo'" in row["error"]
    assert json.loads(row["raw"])["pickup_branch"] == "tokyo"
    # no branch to phone from: nothing on any call list (staff read it in review rejected)
    assert with_store(s, lambda st: st.calls()) == []


def test_invalid_hold_ready_naming_its_hold_goes_to_the_call_list_too(outbox_settings, clean_redis):
    """The hold is ready in the ILS whatever the event got wrong: it is refused for the
    integrator to fix *and* listed for a phone call, once, even if sent again; a corrected
    event that follows is a duplicate (the patron is phoned, not also mailed)."""
    s = outbox_settings
    ns = s.redis.namespace
    with_store(s, lambda st: set_contact(st, "C-5", ContactState.ACTIVE, address="hanako@example.jp", staff="S01", why="test"))
    bad = hold_event("H-5", "C-5", pickup_by="12/05")
    bad["item"]["title"] = "猫\r\nBcc: evil@example.com"
    with run_worker(s):
        for _ in range(2):
            rid = str(uuid.uuid4())
            raw_enqueue(clean_redis, ns, envelope("hold_ready", bad, rid), rid)
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
        rid = str(uuid.uuid4())
        raw_enqueue(clean_redis, ns, envelope("hold_ready", hold_event("H-5", "C-5"), rid), rid)
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
    rows = with_store(s, lambda st: st.rejected())  # once per message sent
    assert len(rows) == 2 and all("pickup_by" in r["error"] and "item.title" in r["error"] for r in rows)
    [call] = with_store(s, lambda st: st.calls(branch="ogawa"))
    assert (call["hold_id"], call["card_number"], call["reason"]) == ("H-5", "C-5", "invalid_event")
    assert call["reason_ja"] == "予約連携データに不備(内容を確認して電話)"
    assert call["title"] is None and call["pickup_by"] == ""  # only what was valid
    assert "pickup_by" in call["detail"]
    assert with_store(s, lambda st: st.get_hold("H-5"))["status"] == "phoned"
    assert not list((s.mail.outbox_dir).glob("*.eml"))  # no mail after the phone call


def test_a_refused_hold_ready_the_worker_gave_up_on_is_still_listed(outbox_settings):
    """If listing a refused hold_ready failed again and again (Redis trouble, say), the
    gave_up actor lists it when it runs, as hold_ready would have — it does not choke on
    the invalid event."""
    import asyncio

    import worker.runtime as rtmod
    from worker.actors import gave_up
    from worker.runtime import Runtime

    s = outbox_settings
    bad = hold_event("H-6", "C-6", pickup_by="soon")
    message = {"actor_name": "hold_ready", "message_id": "m-6", "args": [bad],
               "options": {"traceback": "Traceback …\nredis.exceptions.ConnectionError: gone"}}

    async def go() -> None:
        rtmod._runtime = Runtime.create(s)
        try:
            await gave_up.fn.__wrapped__(message, {"retries": 8})  # the coroutine itself
        finally:
            await rtmod._runtime.close()
            rtmod.reset_runtime()
    asyncio.run(go())
    [call] = with_store(s, lambda st: st.calls())
    assert (call["hold_id"], call["reason"]) == ("H-6", "invalid_event")
    assert "pickup_by" in call["detail"]


def test_a_refused_hold_ready_too_large_to_keep_is_still_listed(outbox_settings, clean_redis):
    """Refused for its size, it is listed; what the hold keeps for the sweeper is readable
    JSON that names the hold (the whole event would not fit), not a cut-off document."""
    s = outbox_settings
    ns = s.redis.namespace
    huge = hold_event("H-7", "C-7")
    huge["item"]["title"] = "猫" * 400_000  # > 1 MiB of UTF-8
    with run_worker(s):
        rid = str(uuid.uuid4())
        raw_enqueue(clean_redis, ns, envelope("hold_ready", huge, rid), rid)
        wait_for(lambda: with_store(s, lambda st: st.calls()))
    [call] = with_store(s, lambda st: st.calls())
    assert (call["hold_id"], call["reason"], call["title"]) == ("H-7", "invalid_event", None)
    kept = json.loads(with_store(s, lambda st: st.get_hold("H-7"))["event"])
    assert kept == {"type": "hold_ready", "hold_id": "H-7", "card_number": "C-7",
                    "pickup_branch": "ogawa"}
    [row] = with_store(s, lambda st: st.rejected())
    assert "larger than" in row["error"]


def call_gave_up(s, payload, traceback: str = "Traceback …\nRuntimeError: boom") -> None:
    """Run the gave_up actor's coroutine itself, as the worker does when retries run out."""
    import asyncio

    import worker.runtime as rtmod
    from worker.actors import gave_up
    from worker.runtime import Runtime

    message = {"actor_name": "hold_ready", "message_id": "m-gave-up", "args": [payload],
               "options": {"traceback": traceback}}

    async def go() -> None:
        rtmod._runtime = Runtime.create(s)
        try:
            await gave_up.fn.__wrapped__(message, {"retries": 8})
        finally:
            await rtmod._runtime.close()
            rtmod.reset_runtime()
    asyncio.run(go())


CHOKED_ON = [  # issue 14 #2 and #3: what made parse_event or the date arithmetic raise
    ("lone surrogate", {"patron_name": "\ud800x"}, "patron_name: contains a lone surrogate"),
    ("far-future day", {"pickup_by": "9999-12-31"}, "pickup_by: must fall between"),
]


@pytest.mark.parametrize("what,over,words", CHOKED_ON, ids=[c[0] for c in CHOKED_ON])
def test_a_hold_ready_the_worker_used_to_choke_on_is_refused_and_listed_once(
        outbox_settings, clean_redis, what, over, words):
    s = outbox_settings
    ns = s.redis.namespace
    bad = hold_event("H-20", "C-20", **over)
    # as a producer writes it: JSON with the surrogate as its \ud800 escape
    body = json.dumps(json.loads(envelope("hold_ready", bad, None)), separators=(",", ":"))
    with run_worker(s):
        rid = str(uuid.uuid4())
        msg = json.loads(body)
        msg["options"]["redis_message_id"] = rid
        raw_enqueue(clean_redis, ns, json.dumps(msg), rid)
        wait_for(lambda: with_store(s, lambda st: st.calls()))
        wait_for(lambda: leftovers(clean_redis, ns) == {"queue": 0, "msgs": 0, "acks": 0, "dead": 0})
    [call] = with_store(s, lambda st: st.calls())
    assert (call["hold_id"], call["reason"], call["title"]) == ("H-20", "invalid_event", "吾輩は猫である")
    assert words in call["detail"]
    [row] = with_store(s, lambda st: st.rejected())
    assert row["event_id"] == "ev-H-20" and words in row["error"]
    json.loads(row["raw"])  # kept readable


@pytest.mark.parametrize("over,reason,words,pickup_by", [
    ({"pickup_by": "9999-12-31"}, "invalid_event", "pickup_by", ""),
    ({"patron_name": "\ud800x"}, "invalid_event", "lone surrogate", "2099-12-05"),
    ({"ready_at": "0001-01-01T00:00:00+23:59"}, "invalid_event", "ready_at", "2099-12-05"),
    ({}, "worker_error", "RuntimeError: boom", "2099-12-05"),
])
def test_the_last_resort_lists_the_hold_from_the_raw_payload(outbox_settings, over, reason,
                                                             words, pickup_by):
    """Issue 14 #3: give_up works from what names the hold in the payload, so what broke
    the first tries (an event that does not parse, dates that overflow) cannot break it."""
    s = outbox_settings
    call_gave_up(s, hold_event("H-21", "C-21", **over))
    [call] = with_store(s, lambda st: st.calls())
    assert (call["hold_id"], call["card_number"], call["reason"]) == ("H-21", "C-21", reason)
    assert words in call["detail"] and call["pickup_by"] == pickup_by
    assert call["title"] == "吾輩は猫である"
    hold = with_store(s, lambda st: st.get_hold("H-21"))
    assert hold["status"] == "phoned"
    json.loads(hold["event"])
    call_gave_up(s, hold_event("H-21", "C-21", **over))  # once more: still listed once
    assert len(with_store(s, lambda st: st.calls())) == 1
