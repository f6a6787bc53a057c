"""Staff actions confirmed by replicas: the one place a staff write waits for Redis
replication (``[staff_writes] replicas`` and ``timeout_ms``; docs/operations.md, "High
availability").

Redis replicates asynchronously: a write the primary answered can still be lost when the
primary dies before a replica copied it and Sentinel promotes that replica. For the
worker's own writes this is covered otherwise (a redelivered message does the step again,
see the operations guide); a staff member's click is not redone by anyone, so it is
reported done only once a replica has it.

How: after the action, one pipeline (one connection, one round trip) sends
``INCR replicas:mark`` then ``WAIT replicas timeout_ms``. WAIT counts the replicas that
acknowledged everything *this connection* wrote, which is why the mark is written on the
connection that waits: a WAIT on another pooled connection would answer for that
connection's last write, or for none (tests/test_staff_replicas.py shows it saying "kept"
with the replica stopped). The primary's replication stream is one ordered log, and the
action's write was answered before the mark was sent, so a replica that acknowledged the
mark has the action too — and, for a repeat that changed nothing, the earlier write it
found. The pipeline is never retried (``connect.not_retried``): through Sentinel a retry
after a connection error reaches the new primary, whose replicas would confirm the mark
and nothing of what the dead primary took — an error here is "maybe not kept".
``replicas = 0`` (one Redis): nothing is sent at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..errors import NotConfirmed
from .base import Conn
from .connect import not_retried


@dataclass(frozen=True)
class Replication:
    """What the replicas said about one staff action: ``kept`` when at least ``wanted``
    confirmed it (always, when none is wanted), else maybe not kept — ``acked`` of
    ``wanted`` within ``timeout_ms`` (``why``: the error that cut the wait short)."""

    wanted: int
    acked: int = 0
    timeout_ms: int = 0
    waited_ms: float = 0.0
    why: str = ""

    @property
    def kept(self) -> bool:
        return self.acked >= self.wanted and not self.why

    def __str__(self) -> str:
        if self.kept:
            return "kept" if self.wanted == 0 else f"kept ({self.acked} of {self.wanted} replicas)"
        return (f"maybe not kept ({self.acked} of {self.wanted} replicas in "
                f"{self.timeout_ms} ms{f': {self.why}' if self.why else ''})")

    def require(self) -> "Replication":
        """This, or :class:`~worker.errors.NotConfirmed` when maybe not kept."""
        if not self.kept:
            raise NotConfirmed(self.acked, self.wanted, self.timeout_ms, self.why)
        return self


async def confirmed_by_replicas(r: aioredis.Redis, mark_key: str, wanted: int,
                                timeout_ms: int) -> Replication:
    """Wait until ``wanted`` replicas have everything the primary did up to now (see the
    module's note), at most ``timeout_ms``. Never raises: a Redis error here comes after
    the action was answered, so it is "maybe not kept", which staff can act on."""
    if wanted <= 0:
        return Replication(0)
    start = time.monotonic()
    try:
        # never retried: after a failover the retry would reach the new primary, whose
        # replicas would confirm the mark but not the action the old one took
        with not_retried():
            async with r.pipeline(transaction=False) as p:
                p.incr(mark_key)
                p.wait(wanted, timeout_ms)
                _, acked = await p.execute()
    except (RedisError, OSError) as e:
        return Replication(wanted, 0, timeout_ms, (time.monotonic() - start) * 1000,
                           f"{type(e).__name__}: {e}"[:200])
    return Replication(wanted, int(acked), timeout_ms, (time.monotonic() - start) * 1000)


async def confirm_staff_write(conn: Conn) -> Replication:
    """The step after every staff action (the store's staff writes call it): kept, or
    :class:`~worker.errors.NotConfirmed` — written, maybe not kept. No WAIT at all with
    ``[staff_writes] replicas = 0``."""
    return (await confirmed_by_replicas(conn.r, conn.k.replicas_mark, conn.staff_replicas,
                                        conn.staff_timeout_ms)).require()
