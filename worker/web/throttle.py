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
from ..store.core import Store

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
        self.db, self.web = store.staff, web

    async def check(self, staff_id: str, addr: str) -> None:
        """Raises :class:`Throttled` when this try may not be checked now."""
        if await self.db.is_known_client(staff_id, addr):
            wait_ms = await self.db.wait_left_ms(staff_id, addr)
            if wait_ms > 0:
                raise Throttled("slow", -(-wait_ms // 1000))
            return
        c_pair, c_addr, c_id = await self.db.failure_counts(staff_id, addr)
        if c_pair >= self.web.login_max_failures or c_addr >= self.web.login_max_failures_per_client:
            raise Throttled("client", await self._left(staff_id, addr, slice(0, 2)))
        if c_id >= self.web.login_max_failures_per_id:
            raise Throttled("id", await self._left(staff_id, addr, slice(2, 3)))

    async def _left(self, staff_id: str, addr: str, which: slice) -> int:
        ttls = await self.db.failure_ttls_s(staff_id, addr, which)
        return max([t for t in ttls if t > 0] or [self.web.login_window_s])

    async def failed(self, staff_id: str, addr: str, account_exists: bool) -> None:
        pair_count, known = await self.db.count_failure(
            staff_id, addr, window_s=self.web.login_window_s, account_exists=account_exists,
            missed_for_s=MISSED_FOR_S)
        over = pair_count - self.web.login_max_failures
        if known and over >= 0:
            await self.db.slow_down(staff_id, addr, min(MAX_WAIT_S, 2 ** min(over, 6)))

    async def succeeded(self, staff_id: str, addr: str) -> int:
        """Forget the pair's and the id's failures, remember the client; returns how
        many wrong passwords were given for this id since its last good login."""
        return await self.db.count_success(staff_id, addr, KNOWN_FOR_S)
