"""The sweeper: no hold may stay undecided because its message went missing.

dramatiq can lose track of a message when Redis goes away at the wrong moment:
an actor that fails while Redis is down can neither schedule its retry nor be
acknowledged, and the message stays in the ack set of a worker that is still
alive, so dramatiq's own maintenance (which only rescues *dead* workers' messages)
never re-queues it. A thread in each worker process therefore, every
``[delivery] sweep_interval_s``:

1. re-queues messages that sit in a live worker's ack set of ``notifications``
   for longer than two leases (no notice takes that long), and delayed retries
   (``.DQ`` ack sets) still unacknowledged two leases past their ``eta``;
2. re-enqueues holds listed in ``inflight`` (``sending`` or ``retrying``) long after
   they should have moved on — the case where even the message is gone;
3. adopts orphans: a message stored in the queue's hash but on no queue and in no
   ack set for two leases (a raw producer that died between HSET and RPUSH) is
   queued, with a WARNING line naming it, and then runs like any other. Looking for
   them costs a few counts per sweep; the id-by-id look runs only when the counts
   say something is stored that is neither queued nor fetched.

A message is re-queued at most once per two leases, whichever sweeper sees it
(a marker ``<ns>:__swept__.<queue>.<id>`` with that lifetime).

Both are safe because the claim decides: a hold already decided is a duplicate,
one whose lease is still held is looked at again later.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable

import redis

from ..store.keys import Keys
from ..store.scripts import lua
from ..store.vocab import OPEN_STATUSES

log = logging.getLogger(__name__)
_TAKE = lua("take_stale")
_REQUEUE = lua("requeue_stranded")
_ADOPT = lua("adopt_orphan")
_COUNTS = lua("queue_counts")


class AckWatch:
    """Remembers since when each fetched-but-unacknowledged message has been seen."""

    def __init__(self, namespace: str, queue: str) -> None:
        self.ns, self.queue = namespace, queue
        self.seen: dict[tuple[str, str], float] = {}
        self.orphans_seen: dict[tuple[str, str], float] = {}

    def _marker(self, queue: str, mid: str) -> str:
        return f"{self.ns}:__swept__.{queue}.{mid}"

    def stranded(self, client: redis.Redis, older_than_s: float,
                 now: float | None = None) -> list[tuple[str, str]]:
        now = time.monotonic() if now is None else now
        current = set()
        for key in client.scan_iter(f"{self.ns}:__acks__.*.{self.queue}", count=100):
            for mid in client.smembers(key):
                current.add((_text(key), _text(mid)))
        self.seen = {k: self.seen.get(k, now) for k in current}
        return [k for k, t in self.seen.items() if now - t >= older_than_s]

    def requeue(self, client: redis.Redis, older_than_s: float, now: float | None = None) -> int:
        script = client.register_script(_REQUEUE)
        queue = f"{self.ns}:{self.queue}"
        done = 0
        for ack_key, mid in self.stranded(client, older_than_s, now):
            if script(keys=[ack_key, queue, queue + ".msgs", self._marker(self.queue, mid)],
                      args=[mid, int(older_than_s * 1000)]):
                log.warning("message %s: re-queued from a live worker's ack set (stranded)", mid)
                done += 1
            self.seen.pop((ack_key, mid), None)
        return done

    def requeue_delayed(self, client: redis.Redis, older_than_s: float,
                        now_ms: int | None = None) -> int:
        """Delayed retries (``.DQ``) wait legitimately in a worker's memory until their
        ``eta``; one still unacknowledged well past its eta was lost there (Redis was
        down when the worker tried to move it on): put it back on the delayed queue."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        script = client.register_script(_REQUEUE)
        dq = f"{self.ns}:{self.queue}.DQ"
        done = 0
        for key in client.scan_iter(f"{self.ns}:__acks__.*.{self.queue}.DQ", count=100):
            for raw_mid in client.smembers(key):
                mid = _text(raw_mid)
                data = client.hget(dq + ".msgs", mid)
                try:
                    eta = int(json.loads(data)["options"].get("eta", 0)) if data else 0
                except (ValueError, KeyError, TypeError):
                    eta = 0
                if now_ms - eta >= older_than_s * 1000 and script(
                        keys=[_text(key), dq, dq + ".msgs", self._marker(self.queue + ".DQ", mid)],
                        args=[mid, int(older_than_s * 1000)]):
                    log.warning("delayed message %s: re-queued, overdue in a live worker", mid)
                    done += 1
        return done

    def adopt_orphans(self, client: redis.Redis, older_than_s: float,
                      now: float | None = None) -> int:
        """Queue what has been stored on no queue and in no ack set for ``older_than_s``
        (in the queue and its delayed queue). Returns how many."""
        now = time.monotonic() if now is None else now
        adopt = client.register_script(_ADOPT)
        current: set[tuple[str, str]] = set()
        done = 0
        for queue in (self.queue, self.queue + ".DQ"):
            key = f"{self.ns}:{queue}"
            acks = [_text(k) for k in client.scan_iter(f"{self.ns}:__acks__.*.{queue}",
                                                        count=100)]
            stored, queued, fetched = client.register_script(_COUNTS)(
                keys=[key, key + ".msgs", *acks])
            if stored <= queued + fetched:
                continue  # the usual case: nothing more to read
            for mid in _unplaced(client, key, acks):
                current.add((queue, mid))
                first = self.orphans_seen.setdefault((queue, mid), now)
                if now - first >= older_than_s and adopt(
                        keys=[key, key + ".msgs", self._marker(queue, mid), *acks],
                        args=[mid, int(older_than_s * 1000)]):
                    log.warning("message %s: stored in %s.msgs but never queued (its producer "
                                "stopped between HSET and RPUSH?); adopted and queued", mid, key)
                    done += 1
                    current.discard((queue, mid))
        self.orphans_seen = {k: t for k, t in self.orphans_seen.items() if k in current}
        return done


def _unplaced(client: redis.Redis, key: str, acks: list[str]) -> set[str]:
    """Ids stored in ``key``.msgs that are neither queued in ``key`` nor in ``acks`` (a
    snapshot: the Lua adoption checks again)."""
    placed: set[str] = set()
    for ack in acks:
        placed.update(_text(m) for m in client.smembers(ack))
    for start in range(0, client.llen(key), 10_000):
        placed.update(_text(m) for m in client.lrange(key, start, start + 9_999))
    return {_text(mid) for mid, _ in client.hscan_iter(key + ".msgs", count=1000)} - placed


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def sweep_once(client: redis.Redis, keys: Keys, send: Callable[[dict[str, Any]], Any],
               push_ms: int, limit: int = 100) -> list[str]:
    """Re-enqueue overdue holds; returns their ids."""
    taken = client.register_script(_TAKE)(keys=[keys.inflight],
                                          args=[int(time.time() * 1000), limit, push_ms])
    done = []
    for raw in taken:
        hold_id = _text(raw)
        status, event, card, branch = client.hmget(keys.hold(hold_id), "status", "event",
                                                   "card_number", "pickup_branch")
        status = _text(status) if status is not None else None
        if status not in OPEN_STATUSES or not event:
            client.zrem(keys.inflight, hold_id)
            continue
        try:
            payload = json.loads(event)
        except ValueError:
            # a stored event that cannot be read back (damaged data): send what names the
            # hold, so it is refused and put on the call list rather than left "sending"
            log.error("hold %s: its stored event is unreadable; re-sent for the call list",
                      hold_id)
            payload = {"type": "hold_ready", "hold_id": hold_id,
                       "card_number": _text(card) if card else None,
                       "pickup_branch": _text(branch) if branch else None}
        send(payload)
        log.warning("hold %s: re-enqueued by the sweeper (it was %s, overdue)", hold_id, status)
        done.append(hold_id)
    return done


def start(url: str, keys: Keys, send: Callable[[dict[str, Any]], Any], *, namespace: str,
          queue: str, lease_s: float, interval_s: float) -> None:
    """A daemon thread in each worker process."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    watch = AckWatch(namespace, queue)
    push_ms = int(2 * lease_s * 1000)

    def loop() -> None:
        while True:
            time.sleep(interval_s)
            try:
                watch.requeue(client, older_than_s=2 * lease_s)
                watch.requeue_delayed(client, older_than_s=2 * lease_s)
                watch.adopt_orphans(client, older_than_s=2 * lease_s)
                sweep_once(client, keys, send, push_ms)
            except redis.RedisError as e:
                log.warning("sweeper: cannot reach Redis (%s); will try again", e)
            except Exception:  # noqa: BLE001 - the safety net must outlive any one bad hold
                log.exception("sweeper: unexpected error; will try again")

    threading.Thread(target=loop, name="omitama-sweeper", daemon=True).start()
