"""Redis I/O of pickup reminders (worker/app/reminders.py)."""

from __future__ import annotations

from .base import Conn, now_iso, now_ms
from .scripts import lua


class ReminderStore:
    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k
        self._take = self.r.register_script(lua("remind_take"))
        self._done = self.r.register_script(lua("remind_done"))

    async def schedule(self, hold_ids: list[str], at_ms: int) -> None:
        if hold_ids:
            await self.r.zadd(self.k.reminders, {h: at_ms for h in hold_ids})

    async def due(self, at_ms: int, limit: int = 1000) -> list[str]:
        return list(await self.r.zrangebyscore(self.k.reminders, "-inf", at_ms, 0, limit))

    async def take(self, hold_ids: list[str], token: str, hold_ms: int) -> list[str]:
        return list(await self._take(keys=[self.k.reminders, *[self.k.hold(h) for h in hold_ids]],
                                     args=[token, now_ms(), hold_ms, *hold_ids]))

    async def done(self, hold_ids: list[str], token: str, message_id: str) -> int:
        return int(await self._done(
            keys=[self.k.reminders, self.k.outcomes, *[self.k.hold(h) for h in hold_ids]],
            args=[token, now_ms(), message_id, self.s.outcomes_maxlen, now_iso(), *hold_ids]))

    async def drop(self, hold_ids: list[str]) -> None:
        if hold_ids:
            await self.r.zrem(self.k.reminders, *hold_ids)
