"""Redis I/O of address registration: the patron record, the pending list, the address index.

Each change reads the patron record under WATCH and writes record, indexes and the
audit entry in one MULTI, so two staff members (or staff and the website) acting at
once cannot leave a half-changed patron. The rules (who may approve, when a code
counts) live in :mod:`worker.registration`; this module only stores.

Patron hash fields: ``state``, ``address``/``envelope``/``key`` (the approved address),
``pending_*`` (the registered address awaiting the call, its branch, time, event,
carrier, typo hint), ``prev_state``, ``code_salt``/``code_hash``/``code_expires_ms``/
``code_wrong``, ``confirmation``/``confirmation_detail`` (the confirmation mail's fate),
``suspended_*`` (a suspended address set aside by a new registration).
"""

from __future__ import annotations

from typing import Any, Callable

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from .store import Store, _dumps, now_iso, now_ms

PENDING_FIELDS = ("pending_address", "pending_envelope", "pending_key", "pending_branch",
                   "pending_at", "pending_event", "pending_carrier", "pending_typo", "prev_state",
                   "code_salt", "code_hash", "code_expires_ms", "code_wrong", "confirmation",
                   "confirmation_detail", "confirmation_lease_ms")
ACTIVE_FIELDS = ("address", "envelope", "key")
SUSPENDED_FIELDS = ("suspended_address", "suspended_envelope", "suspended_key")

Change = Callable[[dict[str, str]], tuple[dict[str, Any], list[str], dict[str, Any]]]


class Registry:
    def __init__(self, store: Store) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k

    async def get(self, card: str) -> dict[str, str]:
        return await self.r.hgetall(self.k.patron(card))

    async def change(self, card: str, fn: Change,
                     extra: Callable[[Pipeline, dict[str, str]], None] | None = None) -> dict[str, str]:
        """Apply ``fn(record) -> (set fields, delete fields, audit entry)`` atomically;
        returns the record as it was before."""
        key = self.k.patron(card)
        while True:
            async with self.r.pipeline(transaction=True) as p:
                try:
                    await p.watch(key)
                    before = await p.hgetall(key)
                    fields, drop, audit = fn(before)
                    p.multi()
                    if drop:
                        p.hdel(key, *drop)
                    if fields:
                        p.hset(key, mapping={"updated_ms": now_ms(), **fields})
                    if "state" in fields:
                        if fields["state"] == "suspended":
                            p.sadd(self.k.suspended, card)
                        else:
                            p.srem(self.k.suspended, card)
                    if extra:
                        extra(p, before)
                    p.rpush(self.k.audit(card), _dumps({"at": now_iso(), **audit}))
                    await p.execute()
                    return before
                except WatchError:
                    continue

    def index(self, p: Pipeline, card: str, add: list[str], remove: list[str]) -> None:
        for key in remove:
            if key and key not in add:
                p.srem(self.k.address(key), card)
        for key in add:
            if key:
                p.sadd(self.k.address(key), card)

    async def wrong_code(self, card: str) -> int:
        return int(await self.r.hincrby(self.k.patron(card), "code_wrong", 1))

    async def set_confirmation(self, card: str, event_id: str, status: str, detail: str) -> None:
        """Record the confirmation mail's fate, unless a newer registration replaced it."""
        key = self.k.patron(card)
        async with self.r.pipeline(transaction=True) as p:
            try:
                await p.watch(key)
                if await p.hget(key, "pending_event") != event_id:
                    return
                p.multi()
                p.hset(key, mapping={"confirmation": status, "confirmation_detail": detail})
                await p.execute()
            except WatchError:
                return

    async def cards_with(self, address_key: str) -> set[str]:
        return set(await self.r.smembers(self.k.address(address_key)))

    async def pending(self) -> list[tuple[str, dict[str, str]]]:
        cards = await self.r.zrange(self.k.pending, 0, -1)
        async with self.r.pipeline(transaction=False) as p:
            for card in cards:
                p.hgetall(self.k.patron(card))
            records = await p.execute()
        return [(c, h) for c, h in zip(cards, records) if h.get("state") == "pending"]


def audit_entry(what: str, staff: str, why: str = "", branch: str | None = None,
                **more: Any) -> dict[str, Any]:
    return {"what": what, "staff": staff, "why": why, "branch": branch, **more}

