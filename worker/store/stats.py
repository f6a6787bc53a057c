"""Redis I/O of the library's statistics: one hash per Tokyo day (``stats:day:{day}``).

What is counted and how a field is named: :mod:`worker.stats.fields`. The hold counts
are made inside the outcome scripts (worker/store/outcomes.py, lua/remind_done.lua), the
contact counts inside the contact change's MULTI (:func:`count_contact`); this module
adds those and reads the days back. Old days go with the daily purge (``stats_days``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Mapping

from redis.asyncio.client import Pipeline

from ..jdate import TOKYO
from ..stats.fields import contact_counts
from .base import Conn
from .keys import Keys


def count_contact(p: Pipeline, keys: Keys, before: Mapping[str, str],
                  audit: Mapping[str, Any]) -> None:
    """Queue the counts of one contact change on ``p`` (inside its MULTI)."""
    now = datetime.now(TOKYO)
    counts = contact_counts(before, audit, now)
    if counts:
        day = keys.stats_day(now.date().isoformat())
        for name, n in counts:
            p.hincrby(day, name, n)


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


class StatsStore:
    def __init__(self, store: Conn) -> None:
        self.r = store.r
        self.k = store.k

    async def days(self, first: date, last: date) -> dict[date, dict[str, int]]:
        """The counts of each day from ``first`` to ``last`` (days without any: empty)."""
        wanted = days_between(first, last)
        async with self.r.pipeline(transaction=False) as p:
            for d in wanted:
                p.hgetall(self.k.stats_day(d.isoformat()))
            got = await p.execute()
        return {d: {k: int(v) for k, v in h.items()} for d, h in zip(wanted, got)}

    async def drop_before(self, cutoff: date, dry_run: bool) -> int:
        """Remove (count) the days older than ``cutoff``."""
        prefix = self.k.stats_day("")
        n = 0
        async for key in self.r.scan_iter(prefix + "*", count=500):
            try:
                day = date.fromisoformat(key[len(prefix):])
            except ValueError:
                continue
            if day < cutoff:
                n += 1 if dry_run else int(await self.r.delete(key))
        return n
