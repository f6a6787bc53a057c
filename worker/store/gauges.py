"""The figures the metrics read from Redis (worker/queue/metrics.py): the phone-call list
by branch, pending approvals, suspended addresses, failures by reason. Synchronous: the
metrics refresher is a thread of its own."""

from __future__ import annotations

import json
from typing import Any

import redis

from ..settings import RedisSettings
from .connect import sync_client
from .keys import Keys


def connect(where: RedisSettings | str) -> redis.Redis:
    return sync_client(where, socket_timeout=5)


def read_gauges(client: redis.Redis, keys: Keys, branches: list[str]) -> dict[str, Any]:
    calls = {b: 0 for b in branches}
    for raw in client.hvals(keys.calls):
        branch = json.loads(raw).get("pickup_branch")
        calls[branch] = calls.get(branch, 0) + 1
    bounces = {k.decode() if isinstance(k, bytes) else k: int(v)
               for k, v in client.hgetall(keys.bounce_reasons).items()}
    return {"calls": calls, "pending": client.zcard(keys.pending),
            "suspended": client.scard(keys.suspended), "bounces": bounces}
