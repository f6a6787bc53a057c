"""Redis I/O of address registration: the patron record, the pending list, the address index.

Each change reads the patron record under WATCH and writes record, indexes and the
audit entry in one MULTI, so two staff members (or staff and the website) acting at
once cannot leave a half-changed patron. What a change is — every transition of a
patron's address — is decided in :mod:`worker.contact.changes`; this module only stores.

Patron hash fields: ``state``, ``address``/``envelope``/``key`` (the approved address),
``pending_*`` (the registered address awaiting the call, its branch, time, event,
carrier, typo hint), ``prev_state``, ``code_salt``/``code_hash``/``code_expires_ms``/
``code_wrong``, ``confirmation``/``confirmation_detail`` (the confirmation mail's fate),
``suspended_*`` (a suspended address set aside by a new registration).
"""

from __future__ import annotations

from typing import Callable, Sequence, cast

from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from ..contact import Confirmation, ContactState
from ..contact.changes import ContactChange, Record
from ..errors import AlreadyDone
from .base import Conn, _dumps, now_iso, now_ms
from .replicas import confirm_staff_write
from .stats import count_contact

Transition = Callable[[Record], ContactChange]


class Registry:
    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k

    async def get(self, card: str) -> dict[str, str]:
        return await self.r.hgetall(self.k.patron(card))

    async def apply(self, card: str, transition: Transition, *,
                    staff: bool = False) -> tuple[dict[str, str], ContactChange]:
        """Read the patron under WATCH, compute ``transition(record)`` (pure; it may raise
        to refuse) and write everything it says — record, address index, pending list,
        suspended set, audit entry — in one MULTI. Returns the record as it was before,
        and the change. ``staff``: a staff action, confirmed by replicas afterwards — also
        when the transition finds it done already (``AlreadyDone``: the state found must
        survive a failover as much as a new write) — see ``replicas.confirm_staff_write``."""
        try:
            done = await self._apply(card, transition)
        except AlreadyDone:
            if staff:
                await confirm_staff_write(self.s)
            raise
        if staff:
            await confirm_staff_write(self.s)
        return done

    async def _apply(self, card: str, transition: Transition) -> tuple[dict[str, str], ContactChange]:
        [done] = await self._apply_all([(card, transition)])
        return done

    async def apply_many(self, items: Sequence[tuple[str, Transition]]) -> list[ContactChange]:
        """``apply`` for many cards at once, all or nothing, in as many round trips as one
        (for bulk set-ups: the tests' and benchmarks' patrons); one card appears at most
        once."""
        if len({card for card, _ in items}) != len(items):
            raise ValueError("apply_many: a card appears twice; apply its transitions in turn")
        return [change for _, change in await self._apply_all(items)]

    async def _apply_all(self, items: Sequence[tuple[str, Transition]]
                         ) -> list[tuple[dict[str, str], ContactChange]]:
        """The one path of every contact change, one card (``apply``) or many
        (``apply_many``): WATCH the records, read them, compute each transition, write
        every change with its statistics in one MULTI — retried whole if any record moved
        meanwhile. Each card's record before, and its change."""
        keys = [self.k.patron(card) for card, _ in items]
        while True:
            async with self.r.pipeline(transaction=True) as p:
                try:
                    await p.watch(*keys)
                    befores = await self._read(p, keys)
                    done = [(before, transition(before))
                            for (_, transition), before in zip(items, befores)]
                    p.multi()
                    for (card, _), (before, change) in zip(items, done):
                        self._write(p, card, before, change)
                    await p.execute()
                    return done
                except WatchError:
                    continue

    async def _read(self, p: Pipeline, keys: list[str]) -> list[dict[str, str]]:
        """The watched records. One is read on the watching connection; many in one
        pipeline on another (the watching one sends each command on its own, a round trip
        per record) — read after the WATCH either way, so a write since aborts the MULTI."""
        if len(keys) == 1:  # the client decodes: str, not bytes
            return [cast(dict[str, str], await p.hgetall(keys[0]))]
        async with self.r.pipeline(transaction=False) as read:
            for key in keys:
                read.hgetall(key)
            return list(await read.execute())

    def _write(self, p: Pipeline, card: str, before: Record, c: ContactChange) -> None:
        key = self.k.patron(card)
        if c.drop:
            p.hdel(key, *c.drop)
        if c.fields:
            p.hset(key, mapping={"updated_ms": now_ms(), **c.fields})
        if c.state is not None:
            if c.state == ContactState.SUSPENDED:
                p.sadd(self.k.suspended, card)
            else:
                p.srem(self.k.suspended, card)
        for k in c.index_remove:
            if k not in c.index_add:
                p.srem(self.k.address(k), card)
        for k in c.index_add:
            p.sadd(self.k.address(k), card)
        if c.off_pending:
            p.zrem(self.k.pending, card)
        elif c.pending is not None:
            p.zadd(self.k.pending, {card: c.pending})
        if c.audit is not None:
            p.rpush(self.k.audit(card), _dumps({"at": now_iso(), **c.audit}))
            count_contact(p, self.k, before, c.audit)  # the statistics, same MULTI

    async def set_confirmation(self, card: str, event_id: str, status: Confirmation,
                               detail: str) -> None:
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
        return [(c, h) for c, h in zip(cards, records) if h.get("state") == ContactState.PENDING]

