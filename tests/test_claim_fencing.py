"""Fencing of hold claims in the store's Lua (issue 14, defect 4): each claim has its own
token, and only the latest claim may record the hold's outcome."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import until_lease_over, with_store


@pytest.fixture
def store_run(settings, clean_redis):
    return lambda fn: with_store(settings, fn)


async def _expired_then_taken_over(store: Any, hold_id: str) -> tuple[Any, Any]:
    first = await store.claim_hold(hold_id, token="t1", lease_ms=1, ttl_s=3600,
                                   fields={"card_number": "C1"})
    await until_lease_over(store, hold_id)  # the lease (1 ms) runs out; the first worker is still busy
    second = await store.claim_hold(hold_id, token="t2", lease_ms=60_000, ttl_s=3600, fields={})
    return first, second


def test_takeover_gets_a_new_token_and_the_old_claims_finish_is_refused(store_run):
    async def go(store: Any) -> None:
        first, second = await _expired_then_taken_over(store, "H1")
        assert (first.verdict, second.verdict) == ("claimed", "claimed")
        assert (first.token, second.token) == ("t1", "t2")
        # the notice is the hold's, not a claim's: one Message-ID through takeovers
        assert first.notice == second.notice == await store.notice_name(["H1"])
        assert first.notice not in ("t1", "t2")
        assert await store.hold_for_token(first.notice) == "H1"
        before = await store.get_hold("H1")
        for outcome in ("sent", "retrying", "phoned"):
            got = await store.finish_hold("H1", outcome, first.token, card="C1",
                                          fields={"message_id": "<stale>"},
                                          call={"hold_id": "H1"}, due=1)
            assert got == "lost"
        assert await store.get_hold("H1") == before  # nothing written, not even fields
        assert await store.calls() == []
        assert await store.r.lrange(store.k.sent("C1"), 0, -1) == []
        # the current claim records its outcome, once
        assert await store.finish_hold("H1", "sent", second.token, card="C1",
                                       fields={"message_id": "<m>"}) == "sent"
        assert await store.finish_hold("H1", "sent", first.token, card="C1") == "lost"
        h = await store.get_hold("H1")
        assert h["status"] == "sent" and h["message_id"] == "<m>"
        assert await store.r.lrange(store.k.sent("C1"), 0, -1) == ["H1"]
    store_run(go)


def test_every_retry_claim_fences_the_one_before(store_run):
    async def go(store: Any) -> None:
        tokens = []
        for i in range(3):
            c = await store.claim_hold("H2", token=f"r{i}", lease_ms=60_000, ttl_s=3600,
                                       fields={})
            tokens.append(c.token)
            assert c.attempts == i + 1 and c.notice == await store.notice_name(["H2"])
            assert await store.finish_hold("H2", "retrying", c.token, due=1) == "retrying"
        assert tokens == ["r0", "r1", "r2"]
        for old in tokens[:2]:
            assert await store.finish_hold("H2", "phoned", old, call={"hold_id": "H2"},
                                           due=1) == "lost"
        assert (await store.get_hold("H2"))["status"] == "retrying"
    store_run(go)


def test_a_hold_claimed_before_claims_had_tokens_keeps_its_notice(store_run):
    async def go(store: Any) -> None:
        # as the old claim_hold.lua left it: one "token" and no "notice"
        await store.r.hset(store.k.hold("H3"), mapping={
            "status": "retrying", "token": "old", "attempts": 1, "first_ms": 1})
        c = await store.claim_hold("H3", token="new", lease_ms=60_000, ttl_s=3600, fields={})
        assert (c.token, c.notice, c.attempts) == ("new", "old", 2)
        assert await store.finish_hold("H3", "sent", "old") == "lost"
        assert await store.finish_hold("H3", "sent", "new") == "sent"
    store_run(go)


def test_a_finish_on_an_expired_hold_creates_nothing(store_run):
    async def go(store: Any) -> None:
        assert await store.finish_hold("gone", "sent", "t", fields={"message_id": "<m>"}) \
            == "missing"
        assert await store.get_hold("gone") == {}
    store_run(go)


def test_only_the_current_claim_may_extend_its_lease(store_run):
    async def go(store: Any) -> None:
        first, second = await _expired_then_taken_over(store, "H4")
        lease = int((await store.get_hold("H4"))["lease_until"])
        assert await store.extend_lease("H4", first.token, lease + 60_000) is False
        assert int((await store.get_hold("H4"))["lease_until"]) == lease
        assert await store.extend_lease("H4", second.token, lease + 60_000) is True
        assert int((await store.get_hold("H4"))["lease_until"]) == lease + 60_000
        # never shortened; and a finished claim has no lease left to extend
        assert await store.extend_lease("H4", second.token, lease) is True
        assert int((await store.get_hold("H4"))["lease_until"]) == lease + 60_000
        assert await store.finish_hold("H4", "sent", second.token) == "sent"
        assert await store.extend_lease("H4", second.token, lease + 120_000) is False
        assert (await store.get_hold("H4")).get("lease_until") is None
    store_run(go)
