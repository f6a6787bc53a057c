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
(a marker ``<ns>:__swept__.<queue>.<id>`` with that lifetime). The Redis side of each
step is in :mod:`worker.store.sweeps`, dramatiq's key names in :mod:`worker.store.queue_keys`.

Both are safe because the claim decides: a hold already decided is a duplicate,
one whose lease is still held is looked at again later.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any, Callable

from ..settings import RedisSettings
from ..store.client import RedisError
from ..store.keys import Keys
from ..store.queue_keys import QueueKeys, delayed
from ..store.sweeps import SweepStore
from ..store.vocab import OPEN_STATUSES

log = logging.getLogger(__name__)


class AckWatch:
    """Remembers since when each fetched-but-unacknowledged message has been seen."""

    def __init__(self, db: SweepStore, queue: str) -> None:
        self.db, self.queue = db, queue
        self.seen: dict[tuple[str, str], float] = {}
        self.orphans_seen: dict[tuple[str, str], float] = {}

    def stranded(self, older_than_s: float, now: float | None = None) -> list[tuple[str, str]]:
        now = time.monotonic() if now is None else now
        current = {(ack, mid) for ack in self.db.ack_sets(self.queue)
                   for mid in self.db.members(ack)}
        self.seen = {k: self.seen.get(k, now) for k in current}
        return [k for k, t in self.seen.items() if now - t >= older_than_s]

    def requeue(self, older_than_s: float, now: float | None = None) -> int:
        done = 0
        for ack_set, mid in self.stranded(older_than_s, now):
            if self.db.requeue(ack_set, self.queue, mid, int(older_than_s * 1000)):
                log.warning("message %s: re-queued from a live worker's ack set (stranded)", mid)
                done += 1
            self.seen.pop((ack_set, mid), None)
        return done

    def requeue_delayed(self, older_than_s: float, now_ms: int | None = None) -> int:
        """Delayed retries (``.DQ``) wait legitimately in a worker's memory until their
        ``eta``; one still unacknowledged well past its eta was lost there (Redis was
        down when the worker tried to move it on): put it back on the delayed queue."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        dq = delayed(self.queue)
        done = 0
        for ack_set in self.db.ack_sets(dq):
            for mid in self.db.members(ack_set):
                if now_ms - self.db.eta_ms(dq, mid) >= older_than_s * 1000 and \
                        self.db.requeue(ack_set, dq, mid, int(older_than_s * 1000)):
                    log.warning("delayed message %s: re-queued, overdue in a live worker", mid)
                    done += 1
        return done

    def adopt_orphans(self, older_than_s: float, now: float | None = None) -> int:
        """Queue what has been stored on no queue and in no ack set for ``older_than_s``
        (in the queue and its delayed queue). Returns how many."""
        now = time.monotonic() if now is None else now
        current: set[tuple[str, str]] = set()
        done = 0
        for queue in (self.queue, delayed(self.queue)):
            acks = self.db.ack_sets(queue)
            stored, queued, fetched = self.db.counts(queue, acks)
            if stored <= queued + fetched:
                continue  # the usual case: nothing more to read
            for mid in self.db.unplaced(queue, acks):
                current.add((queue, mid))
                first = self.orphans_seen.setdefault((queue, mid), now)
                if now - first >= older_than_s and self.db.adopt(
                        queue, mid, acks, int(older_than_s * 1000)):
                    log.warning("message %s: stored in %s but never queued (its producer "
                                "stopped between HSET and RPUSH?); adopted and queued", mid,
                                self.db.q.messages(queue))
                    done += 1
                    current.discard((queue, mid))
        self.orphans_seen = {k: t for k, t in self.orphans_seen.items() if k in current}
        return done


def sweep_once(db: SweepStore, send: Callable[[dict[str, Any]], Any], push_ms: int,
               limit: int = 100) -> list[str]:
    """Re-enqueue overdue holds; returns their ids."""
    done = []
    for hold_id in db.take_overdue(limit, push_ms):
        h = db.hold_for_resend(hold_id)
        status, event = h["status"], h["event"]
        if status not in OPEN_STATUSES or not event:
            db.drop_inflight(hold_id)
            continue
        try:
            payload = json.loads(event)
        except ValueError:
            # a stored event that cannot be read back (damaged data): send what names the
            # hold, so it is refused and put on the call list rather than left "sending"
            log.error("hold %s: its stored event is unreadable; re-sent for the call list",
                      hold_id)
            payload = {"type": "hold_ready", "hold_id": hold_id,
                       "card_number": h["card_number"], "pickup_branch": h["pickup_branch"]}
        send(payload)
        log.warning("hold %s: re-enqueued by the sweeper (it was %s, overdue)", hold_id, status)
        done.append(hold_id)
    return done


def start(where: RedisSettings, prefix: str, send: Callable[[dict[str, Any]], Any], *, namespace: str,
          queue: str, lease_s: float, interval_s: float) -> None:
    """A daemon thread in each worker process."""
    db = SweepStore.connect(where, Keys(prefix), QueueKeys(namespace))
    watch = AckWatch(db, queue)
    push_ms = int(2 * lease_s * 1000)

    def loop() -> None:
        while True:
            time.sleep(interval_s)
            try:
                watch.requeue(older_than_s=2 * lease_s)
                watch.requeue_delayed(older_than_s=2 * lease_s)
                watch.adopt_orphans(older_than_s=2 * lease_s)
                sweep_once(db, send, push_ms)
            except RedisError as e:
                log.warning("sweeper: cannot reach Redis (%s); will try again", e)
            except Exception:  # noqa: BLE001 - the safety net must outlive any one bad hold
                log.exception("sweeper: unexpected error; will try again")

    threading.Thread(target=loop, name="omitama-sweeper", daemon=True).start()
