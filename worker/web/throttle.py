"""Login throttling that does not hand an attacker a lock-out.

Staff ids (S01, S02, …) are guessable, so counting failures per staff id alone lets
anyone lock a colleague out. Failures are counted per (client, staff id) pair, per
client over all ids, per staff id over all clients (the ceiling) and within
``login_window_s``:

- a client that has logged in as this id before (a counter PC) is never refused, only
  slowed down: after ``login_max_failures`` wrong passwords each try waits 1, 2, 4 … 60 s;
- any other client is refused for the window once its pair, the client itself or the
  staff id as a whole reaches its limit.

A good login resets the pair and the id counters, never the per-client one (a
prankster logging in to his own account must not reset his guesses at others').
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import WebSettings
from ..store import Store

KNOWN_FOR_S = 90 * 86400
MISSED_FOR_S = 30 * 86400
MAX_WAIT_S = 60


@dataclass(frozen=True)
class Throttled(Exception):
    """This try is not checked. ``why``: ``slow`` (wait ``seconds``, then try again),
    ``client`` (this client is refused for a while) or ``id`` (the id, from new clients)."""

    why: str
    seconds: int


class Throttle:
    def __init__(self, store: Store, web: WebSettings) -> None:
        self.r, self.k, self.web = store.r, store.k, web

    def _keys(self, staff_id: str, addr: str) -> list[str]:
        fail = self.k.login_failures
        return [fail("pair", f"{addr}/{staff_id}"), fail("addr", addr), fail("staff", staff_id)]

    async def check(self, staff_id: str, addr: str) -> None:
        """Raises :class:`Throttled` when this try may not be checked now."""
        pair = f"{addr}/{staff_id}"
        if await self.r.sismember(self.k.login_known(staff_id), addr):
            wait_ms = await self.r.pttl(self.k.login_wait(pair))
            if wait_ms > 0:
                raise Throttled("slow", -(-wait_ms // 1000))
            return
        c_pair, c_addr, c_id = [int(c or 0) for c in await self.r.mget(self._keys(staff_id, addr))]
        if c_pair >= self.web.login_max_failures or c_addr >= self.web.login_max_failures_per_client:
            raise Throttled("client", await self._left(self._keys(staff_id, addr)[:2]))
        if c_id >= self.web.login_max_failures_per_id:
            raise Throttled("id", await self._left(self._keys(staff_id, addr)[2:]))

    async def _left(self, keys: list[str]) -> int:
        ttls = [await self.r.ttl(k) for k in keys]
        return max([t for t in ttls if t > 0] or [self.web.login_window_s])

    async def failed(self, staff_id: str, addr: str, account_exists: bool) -> None:
        async with self.r.pipeline(transaction=True) as p:
            for key in self._keys(staff_id, addr):
                p.incr(key)
                p.expire(key, self.web.login_window_s, nx=True)
            if account_exists:
                p.incr(self.k.login_missed(staff_id))
                p.expire(self.k.login_missed(staff_id), MISSED_FOR_S)
            p.sismember(self.k.login_known(staff_id), addr)
            res = await p.execute()
        pair_count, known = int(res[0]), bool(res[-1])
        over = pair_count - self.web.login_max_failures
        if known and over >= 0:
            wait = min(MAX_WAIT_S, 2 ** min(over, 6))
            await self.r.set(self.k.login_wait(f"{addr}/{staff_id}"), 1, ex=wait)

    async def succeeded(self, staff_id: str, addr: str) -> int:
        """Forget the pair's and the id's failures, remember the client; returns how
        many wrong passwords were given for this id since its last good login."""
        async with self.r.pipeline(transaction=True) as p:
            p.delete(*self._keys(staff_id, addr)[::2], self.k.login_wait(f"{addr}/{staff_id}"))
            p.sadd(self.k.login_known(staff_id), addr)
            p.expire(self.k.login_known(staff_id), KNOWN_FOR_S)
            p.getdel(self.k.login_missed(staff_id))
            res = await p.execute()
        return int(res[-1] or 0)
