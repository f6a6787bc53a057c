"""The store's atomic steps against the real Redis."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import until_lease_over, with_store
from tests.helpers import set_contact
from worker.contact import ContactState
from worker.store.core import Store, safe_url


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
        assert (first.attempts, second.attempts) == (1, 2) and second.notice == "a"
        assert await store.finish_hold("H2", "sent", "b", fields={"message_id": "<m>"}) == "sent"
        again = await store.claim_hold("H2", token="c", lease_ms=60_000, ttl_s=3600, fields={})
        assert again.verdict == "done" and again.status == "sent"
        assert await store.hold_for_token("a") == "H2"
    store_run(go)


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
