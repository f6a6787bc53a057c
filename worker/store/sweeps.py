"""Redis I/O of the sweeper (worker/queue/sweeper.py): dramatiq's queues and ack sets,
and holds overdue in ``inflight``. Synchronous: the sweeper is a thread of its own.

Replies may be bytes (the sweeper's client does not decode: a foreign producer's message
need not be UTF-8); ids and keys come back as ``str``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from ..settings import RedisSettings
from .connect import sync_client
from .keys import Keys
from .queue_keys import QueueKeys
from .scripts import lua


def text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class SweepStore:
    def __init__(self, client: redis.Redis, keys: Keys, queues: QueueKeys) -> None:
        self.r, self.k, self.q = client, keys, queues
        self._take = client.register_script(lua("take_stale"))
        self._requeue = client.register_script(lua("requeue_stranded"))
        self._adopt = client.register_script(lua("adopt_orphan"))
        self._counts = client.register_script(lua("queue_counts"))

    @classmethod
    def connect(cls, where: RedisSettings | str, keys: Keys, queues: QueueKeys) -> "SweepStore":
        return cls(sync_client(where, socket_timeout=10), keys, queues)

    # -- dramatiq's messages ---------------------------------------------------

    def ack_sets(self, queue: str) -> list[str]:
        """The ack set of every worker (live or not) for ``queue``."""
        return [text(k) for k in self.r.scan_iter(self.q.acks_pattern(queue), count=100)]

    def members(self, ack_set: str) -> set[str]:
        return {text(m) for m in self.r.smembers(ack_set)}

    def eta_ms(self, queue: str, message_id: str) -> int:
        """The ``options.eta`` of a stored message; 0 when it has none or is unreadable."""
        data = self.r.hget(self.q.messages(queue), message_id)
        try:
            return int(json.loads(data)["options"].get("eta", 0)) if data else 0
        except (ValueError, KeyError, TypeError, AttributeError):
            return 0

    def requeue(self, ack_set: str, queue: str, message_id: str, marker_ms: int) -> bool:
        """Take ``message_id`` out of ``ack_set`` and back onto ``queue`` unless it was
        re-queued within ``marker_ms`` (``requeue_stranded.lua``)."""
        return bool(self._requeue(
            keys=[ack_set, self.q.queue(queue), self.q.messages(queue),
                  self.q.swept(queue, message_id)], args=[message_id, marker_ms]))

    def counts(self, queue: str, ack_sets: list[str]) -> tuple[int, int, int]:
        """(stored, queued, fetched) in one consistent look (``queue_counts.lua``)."""
        stored, queued, fetched = self._counts(
            keys=[self.q.queue(queue), self.q.messages(queue), *ack_sets])
        return int(stored), int(queued), int(fetched)

    def unplaced(self, queue: str, ack_sets: list[str]) -> set[str]:
        """Ids stored for ``queue`` that are neither queued nor in ``ack_sets`` (a
        snapshot: :meth:`adopt` checks again)."""
        placed: set[str] = set()
        for ack in ack_sets:
            placed |= self.members(ack)
        key = self.q.queue(queue)
        for start in range(0, self.r.llen(key), 10_000):
            placed.update(text(m) for m in self.r.lrange(key, start, start + 9_999))
        stored = {text(mid) for mid, _ in self.r.hscan_iter(self.q.messages(queue), count=1000)}
        return stored - placed

    def adopt(self, queue: str, message_id: str, ack_sets: list[str], marker_ms: int) -> bool:
        """Queue a stored message that is on no queue and in no ack set
        (``adopt_orphan.lua``)."""
        return bool(self._adopt(
            keys=[self.q.queue(queue), self.q.messages(queue),
                  self.q.swept(queue, message_id), *ack_sets], args=[message_id, marker_ms]))

    # -- holds -------------------------------------------------------------------

    def take_overdue(self, limit: int, push_ms: int) -> list[str]:
        """Holds in ``inflight`` past their time, each pushed ``push_ms`` further
        (``take_stale.lua``: one sweeper takes it at a time)."""
        return [text(h) for h in self._take(keys=[self.k.inflight],
                                            args=[int(time.time() * 1000), limit, push_ms])]

    def hold_for_resend(self, hold_id: str) -> dict[str, Any]:
        """What the sweeper needs of a hold: status, card_number, pickup_branch (None
        where missing) and event (as stored: json.loads judges whether it is readable)."""
        status, event, card, branch = self.r.hmget(
            self.k.hold(hold_id), "status", "event", "card_number", "pickup_branch")
        return {"status": text(status) if status is not None else None, "event": event,
                "card_number": text(card) if card else None,
                "pickup_branch": text(branch) if branch else None}

    def drop_inflight(self, hold_id: str) -> None:
        self.r.zrem(self.k.inflight, hold_id)
