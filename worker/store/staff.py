"""Redis I/O of the staff web page: accounts, their log, sessions and login counters.

The rules — who may log in, when a session is dead, how long a client waits — are in
``worker/web/auth.py`` and ``worker/web/throttle.py``; this module only reads and writes
the keys (``staff:*``, ``stafflog``, ``web:*`` in :mod:`worker.store.keys`).
"""

from __future__ import annotations

import json
from typing import Any

from .replicas import confirm_staff_write
from .base import Conn, now_iso


class StaffStore:
    def __init__(self, store: Conn) -> None:
        self.s = store
        self.r = store.r
        self.k = store.k

    # -- accounts ----------------------------------------------------------------

    async def account(self, staff_id: str) -> dict[str, str]:
        """The account's fields (hash, branch, epoch, created_at, …); {} when none."""
        return await self.r.hgetall(self.k.staff(staff_id))

    async def create_account(self, staff_id: str, fields: dict[str, str]) -> bool:
        """Create the account with ``fields``; False (nothing written) when it exists."""
        key = self.k.staff(staff_id)
        if not await self.r.hsetnx(key, "created_at", now_iso()):
            return False
        await self.r.hset(key, mapping=fields)
        return True

    async def update_account(self, staff_id: str, fields: dict[str, str]) -> bool:
        """Set ``fields`` of an existing account; False (nothing written) when none."""
        key = self.k.staff(staff_id)
        if not await self.r.exists(key):
            return False
        await self.r.hset(key, mapping=fields)
        return True

    async def delete_account(self, staff_id: str) -> bool:
        return bool(await self.r.delete(self.k.staff(staff_id)))

    async def accounts(self) -> list[tuple[str, dict[str, str]]]:
        """(staff id, fields) of every account, in no order."""
        rows = []
        async for key in self.r.scan_iter(self.k.staff("*"), count=500):
            rows.append((key[len(self.k.staff("")):], await self.r.hgetall(key)))
        return rows

    async def log_change(self, entry: dict[str, Any]) -> None:
        """The account log's line, the last step of every account change (created, password
        set, removed, logged out everywhere) — then confirmed by replicas as a staff action
        is: a removed account or an old password must not come back with a failover."""
        await self.r.rpush(self.k.staff_log, json.dumps(entry, ensure_ascii=False))
        await confirm_staff_write(self.s)

    async def changes(self) -> list[dict[str, str]]:
        """Every account change, oldest first."""
        return [json.loads(x) for x in await self.r.lrange(self.k.staff_log, 0, -1)]

    # -- sessions ----------------------------------------------------------------

    async def open_session(self, sid: str, staff_id: str, fields: dict[str, Any],
                           max_age_s: int) -> None:
        key = self.k.web_session(sid)
        async with self.r.pipeline(transaction=True) as p:
            p.hset(key, mapping={"staff": staff_id, **fields})
            p.expire(key, max_age_s)
            p.sadd(self.k.staff_sessions(staff_id), sid)
            p.expire(self.k.staff_sessions(staff_id), max_age_s)
            await p.execute()

    async def session(self, sid: str) -> dict[str, str]:
        return await self.r.hgetall(self.k.web_session(sid))

    async def touch_session(self, sid: str, seen_ms: int) -> None:
        await self.r.hset(self.k.web_session(sid), "seen_ms", seen_ms)

    async def delete_session(self, sid: str) -> None:
        await self.r.delete(self.k.web_session(sid))

    async def end_sessions(self, staff_id: str) -> int:
        """Delete every session of an account; how many there were."""
        sids = await self.r.smembers(self.k.staff_sessions(staff_id))
        ended = 0
        if sids:
            ended = await self.r.delete(*[self.k.web_session(sid) for sid in sids])
        await self.r.delete(self.k.staff_sessions(staff_id))
        return int(ended)

    async def live_sessions(self, staff_id: str) -> int:
        """Live sessions of an account (forgetting the ids of those that ended)."""
        sids = list(await self.r.smembers(self.k.staff_sessions(staff_id)))
        if not sids:
            return 0
        async with self.r.pipeline(transaction=False) as p:
            for sid in sids:
                p.exists(self.k.web_session(sid))
            live = await p.execute()
        dead = [sid for sid, n in zip(sids, live) if not n]
        if dead:
            await self.r.srem(self.k.staff_sessions(staff_id), *dead)
        return len(sids) - len(dead)

    # -- login counters (the rules are in worker/web/throttle.py) ---------------------

    def _failure_keys(self, staff_id: str, addr: str) -> list[str]:
        """Failures per (client, id) pair, per client, per id — in that order."""
        fail = self.k.login_failures
        return [fail("pair", f"{addr}/{staff_id}"), fail("addr", addr), fail("staff", staff_id)]

    async def is_known_client(self, staff_id: str, addr: str) -> bool:
        """Whether ``addr`` logged in as ``staff_id`` before (within its memory)."""
        return bool(await self.r.sismember(self.k.login_known(staff_id), addr))

    async def wait_left_ms(self, staff_id: str, addr: str) -> int:
        """How long the (client, id) pair must still wait; ≤ 0: not at all."""
        return int(await self.r.pttl(self.k.login_wait(f"{addr}/{staff_id}")))

    async def failure_counts(self, staff_id: str, addr: str) -> tuple[int, int, int]:
        """Failures in the window: (the pair's, the client's, the id's)."""
        pair, client, ident = [int(c or 0) for c in
                               await self.r.mget(self._failure_keys(staff_id, addr))]
        return pair, client, ident

    async def failure_ttls_s(self, staff_id: str, addr: str, which: slice) -> list[int]:
        """Seconds left of the counters ``which`` (a slice of pair, client, id)."""
        return [await self.r.ttl(k) for k in self._failure_keys(staff_id, addr)[which]]

    async def count_failure(self, staff_id: str, addr: str, *, window_s: int,
                            account_exists: bool, missed_for_s: int) -> tuple[int, bool]:
        """Count a wrong password everywhere; (the pair's count now, known client)."""
        async with self.r.pipeline(transaction=True) as p:
            for key in self._failure_keys(staff_id, addr):
                # the window starts at the first failure; SET NX + INCR (INCR keeps the
                # TTL) rather than EXPIRE NX, which needs Redis 7 (docs/operations.md)
                p.set(key, 0, ex=window_s, nx=True)
                p.incr(key)
            if account_exists:
                p.incr(self.k.login_missed(staff_id))
                p.expire(self.k.login_missed(staff_id), missed_for_s)
            p.sismember(self.k.login_known(staff_id), addr)
            res = await p.execute()
        return int(res[1]), bool(res[-1])

    async def slow_down(self, staff_id: str, addr: str, seconds: int) -> None:
        await self.r.set(self.k.login_wait(f"{addr}/{staff_id}"), 1, ex=seconds)

    async def count_success(self, staff_id: str, addr: str, known_for_s: int) -> int:
        """Forget the pair's and the id's failures and the wait, remember the client;
        returns the wrong passwords given for the id since its last good login."""
        keys = self._failure_keys(staff_id, addr)
        async with self.r.pipeline(transaction=True) as p:
            p.delete(keys[0], keys[2], self.k.login_wait(f"{addr}/{staff_id}"))
            p.sadd(self.k.login_known(staff_id), addr)
            p.expire(self.k.login_known(staff_id), known_for_s)
            p.getdel(self.k.login_missed(staff_id))
            res = await p.execute()
        return int(res[-1] or 0)
