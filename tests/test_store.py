"""The store's atomic steps against the real Redis."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import until_lease_over, with_store
from tests.helpers import set_contact
from worker.contact import ContactState
from worker.store.core import Store, now_ms, safe_url


@pytest.fixture
def store_run(settings, clean_redis):
    return lambda fn: with_store(settings, fn)


def test_fifty_concurrent_claims_one_winner(store_run):
    async def go(store):
        claims = await asyncio.gather(*[
            store.claim_hold("H1", token=f"t{i}", lease_ms=60_000, ttl_s=3600,
                             fields={"card_number": "C1"}) for i in range(50)])
        return [c.verdict for c in claims]
    verdicts = store_run(go)
    assert verdicts.count("claimed") == 1 and verdicts.count("busy") == 49


def test_outcome_is_final_and_expired_lease_is_taken_over(store_run):
    async def go(store):
        first = await store.claim_hold("H2", token="a", lease_ms=1, ttl_s=3600, fields={})
        await until_lease_over(store, "H2")
        # the first worker died: its lease ran out, a second one takes over with its own
        # token (see test_claim_fencing.py) and the same notice
        second = await store.claim_hold("H2", token="b", lease_ms=60_000, ttl_s=3600, fields={})
        assert (first.attempts, second.attempts) == (1, 2) and second.notice == first.notice
        assert await store.finish_hold("H2", "sent", "b", fields={"message_id": "<m>"}) == "sent"
        again = await store.claim_hold("H2", token="c", lease_ms=60_000, ttl_s=3600, fields={})
        assert again.verdict == "done" and again.status == "sent"
        assert await store.hold_for_token(first.notice) == "H2"
    store_run(go)


def test_a_claim_or_finish_sent_again_answers_as_the_first_time(store_run):
    """A client that lost the reply (a Redis failover: worker/store/connect.py retries)
    sends the same claim, with the same token, again: it is the same claim, not "busy"
    until its own lease runs out; a finish sent again answers the status it wrote, and
    appends no second outcome."""
    async def go(store):
        first = await store.claim_hold("H4", token="a", lease_ms=60_000, ttl_s=3600,
                                       fields={"card_number": "C1"})
        again = await store.claim_hold("H4", token="a", lease_ms=60_000, ttl_s=3600,
                                       fields={"card_number": "C1"})
        assert again == first and again.verdict == "claimed" and again.attempts == 1
        other = await store.claim_hold("H4", token="b", lease_ms=60_000, ttl_s=3600, fields={})
        assert other.verdict == "busy"  # another claim still waits for the lease
        outcomes = await store.r.xlen(store.k.outcomes)
        assert await store.finish_hold("H4", "sent", "a", card="C1") == "sent"
        assert await store.finish_hold("H4", "sent", "a", card="C1") == "sent"
        assert await store.r.xlen(store.k.outcomes) == outcomes + 1
    store_run(go)


def test_a_digest_or_reminder_take_sent_again_answers_as_the_first_time(store_run):
    """A digest window's join and take and a reminder pass's take, sent again as a client retries
    a call whose reply was lost: the same holds, not "taken by another" (which left them
    waiting for the sweeper) or "busy"."""
    async def go(store):
        for h in ("G1", "G2"):
            c = await store.claim_hold(h, token=f"c-{h}", lease_ms=60_000, ttl_s=3600,
                                       fields={"card_number": "C1"})
            joined = await store.digest.join(h, c.token, "C1", "ogawa", window_ms=60_000,
                                             lease_ms=60_000, new_id="w1")
            again = await store.digest.join(h, c.token, "C1", "ogawa", window_ms=60_000,
                                            lease_ms=60_000, new_id="w1")
            assert (again.verdict, again.gather_id) == ("wait", joined.gather_id)
        window = store.k.gather("C1", "ogawa")
        call = {"keys": [window, store.k.inflight, store.k.gather_taken("digest-1"),
                         store.k.gather_due, store.k.patron("C1")],
                "args": [joined.gather_id, "digest-1", now_ms(), 60_000, store.k.hold(""),
                         f"{joined.gather_id} ogawa C1"]}
        first = await store.digest._take(**call)  # the contact, each hold taken, its record
        assert first[1::2] == ["G1", "G2"] and "digest-1" in first[2]
        assert await store.digest._take(**call) == first  # the same call again
        assert await store.digest.take("C1", "ogawa", joined.gather_id, "digest-2",
                                       60_000) is None  # another take: gone
        await store.finish_hold("G1", "sent", "digest-1", card="C1")
        assert await store.reminders.take(["G1"], "pass-1", 60_000) == ["G1"]
        assert await store.reminders.take(["G1"], "pass-1", 60_000) == ["G1"]
        assert await store.reminders.take(["G1"], "pass-2", 60_000) == []  # busy
    store_run(go)


def test_a_claim_that_joined_its_window_sent_again_answers_as_the_first_time(store_run):
    """A claim that joins the hold's digest window in the same call (claim_hold.lua), sent
    again as a client retries a call whose reply was lost: claimed, in the same window —
    not "busy" until the window's end (the hold waits as retrying by then)."""
    from worker.store.digest import JoinAsked

    async def go(store):
        await set_contact(store, "C1", ContactState.ACTIVE, address="j@example.jp")
        call = dict(token="c-J1", lease_ms=60_000, ttl_s=3600, contact_of="C1",
                    fields={"event": "{}", "card_number": "C1", "pickup_branch": "ogawa"},
                    join=JoinAsked("C1", "ogawa", 60_000, "w-J"))
        first = await store.claim_hold("J1", **call)
        assert first.verdict == "claimed" and first.joined is not None
        assert (first.joined.verdict, first.joined.gather_id) == ("wait", "w-J")
        again = await store.claim_hold("J1", **call)
        assert (again.verdict, again.token, again.attempts) == ("claimed", "c-J1", 1)
        assert again.joined is not None and again.joined.gather_id == "w-J"
        other = await store.claim_hold("J1", **{**call, "token": "c-J2"})
        assert other.verdict == "busy"  # another message for it waits for the window's end
        # a hold first claimed for another card is never put in this card's window
        await store.claim_hold("J2", token="c-x", lease_ms=1, ttl_s=3600, fields={
            "event": "{}", "card_number": "C9", "pickup_branch": "ogawa"})
        await asyncio.sleep(0.01)  # its lease (1 ms) over: the next claim takes it over
        took = await store.claim_hold("J2", **{**call, "token": "c-J3"})
        assert took.verdict == "claimed" and took.joined is None
        assert await store.r.hget(store.k.gather("C1", "ogawa"), "h:J2") is None
        # nor a hold whose patron's address is not approved: a call, no window
        await set_contact(store, "C2", ContactState.PENDING, address="p@example.jp")
        pend = await store.claim_hold("J3", **{**call, "token": "c-J4", "contact_of": "C2",
                                               "join": JoinAsked("C2", "ogawa", 60_000, "w-P"),
                                               "fields": {"event": "{}", "card_number": "C2",
                                                          "pickup_branch": "ogawa"}})
        assert pend.verdict == "claimed" and pend.joined is None
        assert await store.r.exists(store.k.gather("C2", "ogawa")) == 0
    store_run(go)


def test_the_windows_due_are_read_whatever_a_branch_id_holds_and_junk_stalls_nothing(
        store_run, caplog):
    """The pollers read gather_due (worker/queue/windows.py). A branch id is a settings
    key and may hold a space: the entry still names the right card and branch, and the
    take finds the window. An entry no join wrote (by hand, a bug) is dropped with an
    ERROR line: it used to raise in every poll, and no window of any card went out."""
    from worker.store.digest import JoinAsked

    async def go(store):
        await set_contact(store, "C7", ContactState.ACTIVE, address="s@example.jp")
        c = await store.claim_hold("S1", token="c-S1", lease_ms=60_000, ttl_s=3600,
                                   contact_of="C7", join=JoinAsked("C7", "east side", 1, "w-S"),
                                   fields={"event": "{}", "card_number": "C7",
                                           "pickup_branch": "east side"})
        assert c.joined is not None and c.joined.verdict == "wait"
        await store.r.zadd(store.k.gather_due, {"junk": 0, "": 0})
        await asyncio.sleep(0.01)  # the 1 ms window has ended
        due, _ = await store.digest.due(10, 60_000)
        assert [(w.card, w.branch, w.gather_id) for w in due] == [("C7", "east side", "w-S")]
        assert await store.r.zrange(store.k.gather_due, 0, -1) == ["w-S east side C7"]
        took = await store.digest.take("C7", "east side", "w-S", "d-S", 60_000)
        assert took is not None and [h for h, _ in took[0]] == ["S1"]
        assert await store.r.zcard(store.k.gather_due) == 0
    store_run(go)
    assert "2 entries that name no window dropped" in caplog.text


def test_close_during_send_keeps_hold_off_the_call_list(store_run):
    async def go(store):
        c = await store.claim_hold("H3", token="a", lease_ms=60_000, ttl_s=3600, fields={})
        assert await store.close_hold("H3", "cancelled", 3600) == "sending"
        status = await store.finish_hold("H3", "phoned", c.token, call={"hold_id": "H3"}, due=1)
        assert status == "cancelled" and await store.calls() == []
    store_run(go)


def test_mark_called_once(store_run):
    async def go(store):
        c = await store.claim_hold("H4", token="a", lease_ms=60_000, ttl_s=3600, fields={})
        await store.finish_hold("H4", "phoned", c.token, due=20261205,
                                call={"hold_id": "H4", "card_number": "C4", "pickup_branch": "ogawa"})
        assert [x["hold_id"] for x in await store.calls("ogawa")] == ["H4"]
        assert await store.calls("tamari") == []
        assert (await store.mark_called("H4", {"staff": "S1"}, {"kind": "called"}))["card_number"] == "C4"
        assert await store.mark_called("H4", {"staff": "S1"}, {"kind": "called"}) is None
        assert (await store.get_hold("H4"))["status"] == "called"
    store_run(go)


def test_calls_are_ordered_by_deadline(store_run):
    async def go(store):
        for hid, due in [("late", 20261220), ("soon", 20261201), ("mid", 20261210)]:
            c = await store.claim_hold(hid, token=hid, lease_ms=60_000, ttl_s=3600, fields={})
            await store.finish_hold(hid, "phoned", c.token, due=due, call={"hold_id": hid})
        return [x["hold_id"] for x in await store.calls()]
    assert store_run(go) == ["soon", "mid", "late"]


def test_rejected_kept_once_per_fingerprint(store_run):
    async def go(store):
        assert await store.add_rejected("fp1", {"error": "x"}) is True
        assert await store.add_rejected("fp1", {"error": "x"}) is False
        return await store.rejected()
    assert len(store_run(go)) == 1


def test_audit_log_is_append_only_history(store_run):
    async def go(store):
        await set_contact(store, "C5", ContactState.SUSPENDED, address="a@b.jp",
                          staff="S9", why="approved on the phone", branch="minori")
        return await store.history("C5"), await store.get_contact("C5")
    history, contact = store_run(go)
    assert [(h["kind"], h["state"]) for h in history] == [
        ("registered", "pending"), ("approved_without_code", "active"), ("suspended", "suspended")]
    assert history[1]["staff"] == "S9" and history[1]["branch"] == "minori"
    assert contact.state is ContactState.SUSPENDED and contact.address == "a@b.jp"


def test_redis_down_is_a_clear_error():
    from worker.errors import StoreError

    async def go():
        store = Store.connect("redis://:secret@127.0.0.1:1/0", "x:")
        try:
            await store.ping()
        finally:
            await store.close()
    with pytest.raises(StoreError, match=r"cannot reach Redis at redis://:\*\*\*@127.0.0.1:1/0"):
        asyncio.run(go())
    assert "secret" not in safe_url("redis://u:secret@h:1/0")



def _contact_state(r, prefix: str) -> dict[str, object]:
    """Every key under ``prefix`` with its value, less what differs between two runs of
    the same steps: times, the receipt code's salt and hash, the registration's id."""
    import json

    volatile = {"at", "updated_ms", "pending_at", "code_salt", "code_hash", "code_expires_ms",
                "reviewed_event", "pending_event"}
    out: dict[str, object] = {}
    for key in r.scan_iter(f"{prefix}*"):
        kind = r.type(key)
        if kind == "hash":
            out[key] = {k: v for k, v in r.hgetall(key).items() if k not in volatile}
        elif kind == "list":
            out[key] = [{k: v for k, v in json.loads(e).items() if k not in volatile}
                        for e in r.lrange(key, 0, -1)]
        elif kind == "set":
            out[key] = r.smembers(key)
        elif kind == "zset":
            out[key] = r.zrange(key, 0, -1)
        else:
            out[key] = (kind, r.dump(key))
    return out


def test_activating_in_bulk_leaves_what_one_by_one_leaves(settings, store_run, rclient):
    """The bulk set-up (``Registry.apply_many``: tests, benchmarks) and ``apply`` one card
    at a time are one path: the same records, address index, audit log — and statistics
    (a bulk path that skipped them once left the day's counts at zero)."""
    from tests.helpers import activate_many

    cards = {f"C{i}": f"patron{i}@example.jp" for i in range(5)}
    prefix = settings.redis.key_prefix

    async def one_by_one(store):
        for card, address in cards.items():
            await set_contact(store, card, ContactState.ACTIVE, address=address,
                              why="bulk setup")

    store_run(one_by_one)
    single = _contact_state(rclient, prefix)
    rclient.delete(*rclient.keys(f"{prefix}*"))
    store_run(lambda store: activate_many(store, cards, batch=3))  # a batch of 3, then 2
    bulk = _contact_state(rclient, prefix)
    assert bulk == single
    [day] = [v for k, v in single.items() if k.startswith(f"{prefix}stats:")]
    assert day["ogawa|registered"] == day["ogawa|approved.without_code"] == str(len(cards))
    assert {single[f"{prefix}patron:{c}"]["state"] for c in cards} == {"active"}


def test_apply_many_is_all_or_nothing_and_retried_when_a_record_moves(store_run, rclient):
    """A record changed between the read and the write (staff acting meanwhile) makes the
    whole batch read again and recompute; a card twice in one batch is refused."""
    from worker.contact.changes import removed

    seen = []

    async def go(store):
        reg = store.contacts
        await set_contact(store, "C1", ContactState.ACTIVE, address="one@example.jp")
        with pytest.raises(ValueError, match="appears twice"):
            await reg.apply_many([("C1", lambda b: removed(b, "S01", "t"))] * 2)

        def change(before):
            seen.append(before.get("state"))
            if len(seen) == 1:  # another client writes the record before our MULTI
                rclient.hset(store.k.patron("C1"), "state", "suspended")
            return removed(before, "S01", "test")
        await reg.apply_many([("C2", lambda b: removed(b, "S01", "t")), ("C1", change)])
        return await reg.get("C1"), await store.r.llen(store.k.audit("C2"))

    record, c2_audits = store_run(go)
    assert seen == ["active", "suspended"]  # recomputed from what the other client wrote
    assert record["state"] == "none" and c2_audits == 1  # C2 written once, not twice


def test_a_digest_is_recorded_on_a_server_that_lost_its_scripts(tmp_path):
    """finish_all records a digest's holds in one MULTI of EVALSHA without loading the
    script first (a round trip per digest); on a server that lost its script cache — a
    private one just started here — every EVALSHA fails alike, nothing is written, and
    the MULTI runs again once the script is loaded."""
    import socket

    from worker.store.devredis import start_redis, stop_redis

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "redis"
    pid = start_redis(port, data, appendonly=False)

    async def go():
        store = Store.connect(f"redis://127.0.0.1:{port}/0", "lost:")
        try:
            for h in ("H1", "H2"):
                await store.claim_hold(h, token="tk", lease_ms=60_000, ttl_s=3600,
                                       fields={"card_number": "C1"})
            assert not (await store.r.script_exists(store._finish.sha))[0]
            got = await store.digest.finish_all(
                [(h, "sent", {"message_id": "<hold.tk@x>"}, None, 0) for h in ("H1", "H2")],
                "tk", "C1")
            return got, [await store.get_hold(h) for h in ("H1", "H2")], \
                await store.r.xlen(store.k.outcomes)
        finally:
            await store.close()
    try:
        got, holds, outcomes = asyncio.run(go())
    finally:
        stop_redis(pid, data)
    assert got == ["sent", "sent"] and outcomes == 2
    assert [h["status"] for h in holds] == ["sent", "sent"]
