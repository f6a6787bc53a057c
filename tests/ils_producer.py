"""An ILS as the failover test needs one: a steady stream of ``hold_ready`` events, each
written with the HSET + RPUSH recipe of docs/ils-integration.md, to whichever server the
Sentinels name primary (redis-py's ``Sentinel.master_for``: it asks them again after a
connection error). A write that fails is sent again until acknowledged, as a careful ILS
does — so an ambiguous failure may queue a hold twice, which is harmless (one hold, one
notice). The producer remembers when each hold was first acknowledged: the holds it was
told are queued are the ones that must each reach an outcome.

Used by tests/failover_scenario.py (the test and bench/failover.py).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import redis
from redis.backoff import ConstantBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from bench.common import envelope


def primary_client(sentinel_addrs: list[str], master_name: str, *,
                   patience_s: float = 0.0) -> redis.Redis:
    """A client to the primary the Sentinels name now, found again after a failover.
    ``patience_s``: a command fails only after retrying that long (the Sentinels may
    name no primary for a moment while a failover settles)."""
    hosts = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in sentinel_addrs]
    sentinel = Sentinel(hosts, socket_timeout=0.5, socket_connect_timeout=0.5)
    retry = Retry(ConstantBackoff(0.25), int(patience_s / 0.25)) if patience_s else None
    return sentinel.master_for(master_name, socket_timeout=2, socket_connect_timeout=1,
                               retry=retry)


class Producer:
    """``rate`` events a second from ``event(i)`` (i = 0, 1, …) on a thread, until stopped.
    Behind after an outage, it sends what became ready meanwhile at once (holds do not
    wait for Redis to come back)."""

    def __init__(self, client: redis.Redis, namespace: str,
                 event: Callable[[int], dict[str, Any]], rate: float) -> None:
        self.client, self.queue = client, f"{namespace}:notifications"
        self.event, self.rate = event, rate
        self.acked: dict[str, float] = {}  # hold_id → time.time() of its first ack
        self.sends = 0                     # writes attempted (a retried one counts again)
        self.failures = 0                  # writes that raised
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ils-producer", daemon=True)

    def start(self) -> "Producer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def send(self, ev: dict[str, Any], give_up_s: float = 30.0) -> None:
        """One event, HSET + RPUSH in MULTI, again and again until Redis acknowledges it."""
        deadline = time.monotonic() + give_up_s
        while True:
            rid, data = envelope(ev)
            self.sends += 1
            try:
                p = self.client.pipeline(transaction=True)
                p.hset(f"{self.queue}.msgs", rid, data)
                p.rpush(self.queue, rid)
                p.execute()
            except (redis.RedisError, OSError):
                self.failures += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            self.acked.setdefault(ev["hold_id"], time.time())
            return

    def _run(self) -> None:
        i, due = 0, time.monotonic()
        while not self._stop.is_set():
            self.send(self.event(i))
            i += 1
            due += 1 / self.rate
            self._stop.wait(max(0.0, due - time.monotonic()))
