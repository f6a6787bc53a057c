"""Redis I/O of retention: the purge's steps (a patron's data on request is
:mod:`worker.store.patron_data`).

What to remove is decided by :mod:`worker.holds.retention`; each removal here is atomic
and tells whether *it* removed something (a Lua script's count, ZREM's reply), so two
purges at once count — and remove — each thing once.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, AsyncIterator

from ..holds.retention import (CLOSED_STATUSES, EXPIRED, HOLD_PERSONAL_FIELDS, arrival_time,
                               call_entry_over, hold_closed, needs_stripping, strip_fields)
from .base import Conn, now_ms
from .scripts import lua

# entries a trim looks at per round trip (the script runs once per batch)
TRIM_BATCH = 1000
_HOLD_FIELDS = ("status", "closed", "pickup_by", "first_ms", "called_ms", *HOLD_PERSONAL_FIELDS)


class RetentionStore:
    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k
        self._trim = self.r.register_script(lua("trim_old"))
        self._purge_hold = self.r.register_script(lua("purge_hold"))

    async def _scan(self, pattern: str) -> AsyncIterator[str]:
        async for key in self.r.scan_iter(self.k.prefix + pattern, count=500):
            yield key

    # -- holds and the call list ----------------------------------------------------

    async def _drop(self, hold_id: str, expired: bool,
                    fields: tuple[str, ...] = HOLD_PERSONAL_FIELDS) -> tuple[int, int]:
        dropped, listed = await self._purge_hold(
            keys=[self.k.hold(hold_id), self.k.calls, self.k.calls_due],
            args=[hold_id, EXPIRED if expired else "", now_ms(), *fields])
        return int(dropped), int(listed)

    async def close_over_holds(self, now: datetime, dry_run: bool) -> tuple[int, int]:
        """Holds whose service is over: (records stripped of title and name, call-list
        entries removed because the pickup window passed)."""
        stripped = unlisted = 0
        calls = await self.r.hgetall(self.k.calls)
        for hold_id, raw in calls.items():
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = {}
            if not isinstance(entry, dict) or not call_entry_over(entry, now):
                continue
            if dry_run:
                unlisted += 1
                continue
            dropped, listed = await self._drop(hold_id, expired=True)
            stripped += dropped > 0
            unlisted += listed
        prefix = len(self.k.hold(""))
        async for key in self._scan("hold:*"):
            hold = dict(zip(_HOLD_FIELDS, await self.r.hmget(key, _HOLD_FIELDS)))
            hold = {k: v for k, v in hold.items() if v is not None}
            if not needs_stripping(hold, now):
                continue
            if dry_run:
                stripped += 1
                continue
            expired = not hold.get("closed") and hold.get("status") not in CLOSED_STATUSES
            dropped, _ = await self._drop(key[prefix:], expired=expired,
                                          fields=strip_fields(hold, now))
            stripped += dropped > 0
        return stripped, unlisted

    # -- append-only lists ------------------------------------------------------------

    async def trim(self, key: str, cutoff_iso: str, dry_run: bool, seen: str | None = None) -> int:
        """Remove (count) the entries of ``key`` older than ``cutoff_iso``, oldest first."""
        keys = [key, seen] if seen else [key]
        if dry_run:  # counted in one batch after another, without removing
            n = 0
            while True:
                batch = await self.r.lrange(key, n, n + TRIM_BATCH - 1)
                old = _old_prefix(batch, cutoff_iso)
                n += old
                if old < TRIM_BATCH:
                    return n
        total = 0
        while True:
            n = int(await self._trim(keys=keys, args=[cutoff_iso, 1, TRIM_BATCH]))
            total += n
            if n < TRIM_BATCH:
                return total

    async def trim_called(self, cutoff_iso: str, dry_run: bool) -> int:
        """Records of calls made (``called``) older than ``cutoff_iso``."""
        return await self.trim(self.k.called, cutoff_iso, dry_run)

    async def trim_failures(self, cutoff_iso: str, dry_run: bool) -> int:
        """Delivery failures older than ``cutoff_iso``."""
        return await self.trim(self.k.failures, cutoff_iso, dry_run)

    async def trim_bounce_log(self, cutoff_iso: str, dry_run: bool) -> int:
        """Ingested bounce mails' rows older than ``cutoff_iso`` (and their fingerprints)."""
        return await self.trim(self.k.bounces, cutoff_iso, dry_run, seen=self.k.bounces_seen)

    async def trim_audits(self, cutoff_iso: str, dry_run: bool) -> int:
        total = 0
        async for key in self._scan("audit:*"):
            total += await self.trim(key, cutoff_iso, dry_run)
        return total

    async def prune_recent_notices(self, dry_run: bool) -> int:
        """Hold ids in ``sent:{card}`` whose hold record has expired (nothing to trace)."""
        n = 0
        async for key in self._scan("sent:*"):
            ids = await self.r.lrange(key, 0, -1)
            async with self.r.pipeline(transaction=False) as p:
                for hold_id in ids:
                    p.exists(self.k.hold(hold_id))
                alive = await p.execute()
            for hold_id, exists in zip(ids, alive):
                if not exists:
                    n += 1 if dry_run else int(await self.r.lrem(key, 0, hold_id))
        return n

    # -- refused events ---------------------------------------------------------------

    async def drop_refused(self, cutoff: datetime, dry_run: bool) -> int:
        n = 0
        for fp, score in await self.r.zrange(self.k.rejected_order, 0, -1, withscores=True):
            at = arrival_time(score)
            if at is None or at >= cutoff:
                continue
            if dry_run:
                n += 1
                continue
            async with self.r.pipeline(transaction=True) as p:
                p.zrem(self.k.rejected_order, fp)
                p.hdel(self.k.rejected, fp)
                removed, _ = await p.execute()
            n += int(removed)
        return n

    # -- the daily run ----------------------------------------------------------------

    async def take_day(self, day: str, who: str) -> bool:
        """Whether this caller runs the purge of ``day`` (the first to ask, once)."""
        return bool(await self.r.set(self.k.purge_day(day), who, nx=True, ex=3 * 86400))

    async def save_report(self, report: dict[str, Any]) -> None:
        await self.r.set(self.k.purge_last, json.dumps(report, ensure_ascii=False))

    async def last_report(self) -> dict[str, Any] | None:
        raw = await self.r.get(self.k.purge_last)
        return json.loads(raw) if raw else None


def _old_prefix(batch: list[str], cutoff_iso: str) -> int:
    """How many entries at the head of ``batch`` are older than the cutoff (as
    ``trim_old.lua`` counts them)."""
    n = 0
    for raw in batch:
        try:
            at = json.loads(raw).get("at")
        except (ValueError, AttributeError):
            break
        if not isinstance(at, str) or at >= cutoff_iso:
            break
        n += 1
    return n
