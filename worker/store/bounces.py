"""Redis I/O of bounce handling: scores per address, the ingest log, tracing helpers."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import date
from typing import Any

from redis.exceptions import WatchError

from ..contact import CallReason
from .base import Conn, _dumps, now_iso
from .outcomes import with_outcomes
from .replicas import confirm_staff_write

# a reader killed while ingesting a mail holds it this long at most; ingesting one mail
# takes well under a second
TAKING_MS = 60_000


class BounceStore:
    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k
        self._rephone = self.r.register_script(with_outcomes("rephone_hold"))

    async def scored_days(self, address_key: str) -> dict[date, float]:
        rows = await self.r.zrange(self.k.bounce_score(address_key), 0, -1, withscores=True)
        return {date.fromisoformat(d): float(p) for d, p in rows}

    async def add_points(self, address_key: str, day: date, points: float, keep_s: int) -> None:
        key = self.k.bounce_score(address_key)
        async with self.r.pipeline(transaction=True) as p:
            p.zadd(key, {day.isoformat(): points})
            p.expire(key, keep_s)
            await p.execute()

    async def count(self, reason: str | None) -> None:
        await self.r.hincrby(self.k.bounce_reasons, reason or "undefined", 1)

    async def seen(self, fingerprint: str) -> bool:
        """Whether a mail with this fingerprint was ingested to the end already."""
        return bool(await self.r.sismember(self.k.bounces_seen, fingerprint))

    def _taking(self, fingerprint: str) -> str:
        return self.k.bounce_taking(hashlib.sha256(fingerprint.encode()).hexdigest()[:32])

    async def take(self, fingerprint: str) -> bool:
        """Take the mail in: True when this reader is to ingest it now, False when it
        was ingested already (by any reader, any path: watch, ``bounces ingest``). While
        another reader is ingesting it, wait for that one: it finishes (False), or was
        killed and its claim runs out (``TAKING_MS``; then True)."""
        key = self._taking(fingerprint)
        while True:
            if await self.seen(fingerprint):
                return False
            if await self.r.set(key, "1", nx=True, px=TAKING_MS):
                if await self.seen(fingerprint):  # finished between the two looks
                    await self.r.delete(key)
                    return False
                return True
            await asyncio.sleep(0.05)

    async def let_go(self, fingerprint: str) -> None:
        """Give the mail back untaken (ingesting it failed: the next pass tries again)."""
        await self.r.delete(self._taking(fingerprint))

    async def mark_seen(self, fingerprint: str) -> None:
        """Called once the mail's consequences are all recorded (see worker/app/ingest.py);
        the claim of :meth:`take` ends with it."""
        async with self.r.pipeline(transaction=True) as p:
            p.sadd(self.k.bounces_seen, fingerprint)
            p.delete(self._taking(fingerprint))
            await p.execute()

    async def weak_today(self, address_key: str, day: str) -> int:
        """Count one more unverified bounce for the address on ``day``; the new count."""
        key = self.k.bounces_weak(address_key, day)
        async with self.r.pipeline(transaction=True) as p:
            p.incr(key)
            p.expire(key, 2 * 86400)
            n, _ = await p.execute()
        return int(n)

    async def over_cap(self) -> None:
        """One more unverified bounce past its address's daily cap: counted, not stored."""
        await self.r.incr(self.k.bounces_over_cap)

    async def over_cap_count(self) -> int:
        return int(await self.r.get(self.k.bounces_over_cap) or 0)

    async def log(self, entry: dict[str, Any]) -> None:
        await self.r.rpush(self.k.bounces, _dumps({"at": now_iso(), **entry}))

    async def logged(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in await self.r.lrange(self.k.bounces, 0, -1)]

    async def rephone(self, hold_id: str, call: dict[str, Any], due: int,
                      reason: CallReason, bounce_reason: str = "") -> str:
        """Put a hold already mailed on the call list (``rephone_hold.lua``): PHONED, or
        the status that stopped it (or ``ClaimVerdict.MISSING``); its outcomes (bounced,
        listed) and their statistics, by ``bounce_reason``, in the same step
        (worker/store/outcomes.py)."""
        return await self._rephone(
            keys=[self.k.hold(hold_id), self.k.calls, self.k.calls_due, self.k.outcomes],
            args=[hold_id, _dumps(call), due, reason, bounce_reason,
                  *self.s.outcome_args()])

    async def recent_holds(self, card: str) -> list[str]:
        return await self.r.lrange(self.k.sent(card), 0, -1)


class SenderProblemStore:
    """The one open alert about failures our sender caused (worker/app/sender_problems.py)."""

    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k

    async def note(self, entry: dict[str, Any], cards: list[str]) -> None:
        now = now_iso()
        async with self.r.pipeline(transaction=True) as p:
            p.hset(self.k.sender_problem, "last", _dumps({"at": now, **entry}))
            p.hsetnx(self.k.sender_problem, "first_at", now)
            p.hincrby(self.k.sender_problem, "count", 1)
            if cards:
                p.sadd(self.k.sender_cards, *cards)
            await p.execute()

    async def get(self) -> dict[str, Any] | None:
        async with self.r.pipeline(transaction=False) as p:
            p.hgetall(self.k.sender_problem)
            p.scard(self.k.sender_cards)
            found, patrons = await p.execute()
        if not found.get("last"):
            return None
        return {**json.loads(found["last"]), "first_at": found.get("first_at"),
                "count": int(found.get("count") or 0), "patrons": int(patrons)}

    async def close(self, staff: str) -> dict[str, Any] | None:
        """Staff close the open alert: deleted, and its line in ``sender:closed`` (who,
        when, what it counted; no card, no diagnostic) written in the same MULTI; None
        when none is open. Then confirmed by replicas as every staff action — also when
        none was open (a repeat: the closing found must survive a failover too)."""
        closed = await self._close(staff)
        await confirm_staff_write(self.s)
        return closed

    async def _close(self, staff: str) -> dict[str, Any] | None:
        while True:
            async with self.r.pipeline(transaction=True) as p:
                try:
                    await p.watch(self.k.sender_problem, self.k.sender_cards)
                    found = await p.hgetall(self.k.sender_problem)
                    if not found.get("last"):
                        return None
                    last = json.loads(found["last"])
                    line = {"at": now_iso(), "staff": staff, "first_at": found.get("first_at"),
                            "last_at": last.get("at"), "reason": last.get("reason"),
                            "count": int(found.get("count") or 0),
                            "patrons": int(await p.scard(self.k.sender_cards))}
                    p.multi()
                    p.delete(self.k.sender_problem, self.k.sender_cards)
                    p.rpush(self.k.sender_closed, _dumps(line))
                    await p.execute()
                    return line
                except WatchError:
                    continue

    async def closings(self) -> list[dict[str, Any]]:
        """Every alert staff closed, oldest first."""
        return [json.loads(x) for x in await self.r.lrange(self.k.sender_closed, 0, -1)]
