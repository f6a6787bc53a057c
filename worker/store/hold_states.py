"""What the worker knows of a list of holds, for ``holds missing`` (worker/app/missing.py):
each hold's record, and whether a message naming it still waits in dramatiq's queue.

The order of the reads is what makes the answer safe. A ``hold_ready`` message is
stored in ``<queue>.msgs`` from the producer's HSET until the worker acknowledges it,
and the worker acknowledges only after the claim wrote the hold's record; a delayed
message (a retry) is written to the main queue before it leaves ``<queue>.DQ.msgs``.
So reading the delayed queue, then the queue, then the records, a hold the ILS
announced is seen at least once on the way — unless the announcement itself was lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..ils.messages import queued_hold
from .base import Conn
from .queue_keys import QueueKeys, delayed

# the fields of a hold's record the answer needs
_FIELDS = ("status", "gather", "last_error")


@dataclass(frozen=True)
class HoldState:
    hold_id: str
    status: str = ""       # the record's status ("": no record)
    gather: str = ""       # the digest window the hold waits in, if any
    last_error: str = ""   # why the last send failed, when retrying
    queued: bool = False   # a message naming the hold waits in dramatiq's queue


class HoldStates:
    """``store.hold_states``: the read behind ``holds missing``."""

    def __init__(self, store: Conn) -> None:
        self.r = store.r
        self.k = store.k

    async def queued(self, namespace: str, queue: str) -> set[str]:
        """The holds named by a message in ``queue`` or its delayed queue (the delayed
        queue read first: a retry is written to the queue before it leaves it)."""
        q = QueueKeys(namespace)
        out: set[str] = set()
        for key in (q.messages(delayed(queue)), q.messages(queue)):
            async for _, body in self.r.hscan_iter(key, count=1000):
                hold = queued_hold(body)
                if hold:
                    out.add(hold)
        return out

    async def of(self, hold_ids: Iterable[str], namespace: str, queue: str) -> list[HoldState]:
        """The state of each hold in ``hold_ids`` (in that order): the queue first, then
        the records (the module's docstring says why)."""
        ids = list(hold_ids)
        queued = await self.queued(namespace, queue)
        out: list[HoldState] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            async with self.r.pipeline(transaction=False) as p:
                for h in chunk:
                    p.hmget(self.k.hold(h), *_FIELDS)
                rows = await p.execute()
            for h, (status, gather, last_error) in zip(chunk, rows):
                out.append(HoldState(h, status or "", gather or "", last_error or "",
                                     h in queued))
        return out
