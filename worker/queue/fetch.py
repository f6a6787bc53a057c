"""Fetching and acknowledging in one round trip: dramatiq's Redis broker and consumer.

:class:`Broker` fetches each message together with the id it is stored under
(``store/lua/fetch.lua``, one round trip as dramatiq's own fetch) and hands both, and the
queue it came from, to the decoder (worker/queue/envelope.py) as :class:`Fetched` bytes;
a finished message is acknowledged with the next fetch (:class:`AckOnFetch`), not in a
round trip of its own. This is the one piece of Redis I/O outside worker/store/: it runs
its script on dramatiq's own client, with the key names from worker/store/queue_keys.py.
"""

from __future__ import annotations

import threading
from typing import Any

from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis
from dramatiq.errors import ConnectionClosed

from ..store.client import REDIS_UNREACHABLE
from ..store.queue_keys import QueueKeys
from ..store.scripts import lua

_FETCH = lua("fetch")


class Fetched(bytes):
    """A message's data as fetched, with the id it is stored under and its queue."""
    rid: str
    queue: str


class AckOnFetch(_RedisConsumer):  # type: ignore[misc]
    """dramatiq's Redis consumer, but ``ack`` only notes the id: the consumer's next
    fetch acknowledges every noted id in the same script (``store/lua/fetch.lua``), saving a
    Redis round trip per message (~5 % of the worker's CPU per notice, bench/README.md).

    The consumer fetches whenever fewer than ``prefetch`` messages are outstanding, and
    an acknowledged message no longer is: so the noted ids go with the very next fetch,
    at most ``worker_timeout`` (1 s) later on an idle queue. Until then the message stays
    in this worker's ack set, as while it ran: a worker that dies before the fetch has
    it redelivered (after dramatiq's heartbeat timeout), and the hold's claim answers
    "done" — the same as a death between the finish and dramatiq's own ack. ``close``
    acknowledges what is noted; more than ``FLUSH_AT`` noted ids go at once."""

    FLUSH_AT = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acked: list[str] = []
        self._lock = threading.Lock()  # worker threads ack, the consumer thread fetches
        self._closed = False

    def ack(self, message: Any) -> None:
        with self._lock:
            self._acked.append(message.options["redis_message_id"])
            self.queued_message_ids.discard(message.message_id)
            now = self._closed or len(self._acked) >= self.FLUSH_AT
        if now:
            self.flush()

    def taken(self) -> list[str]:
        """The noted ids, handed to the fetch that acknowledges them."""
        with self._lock:
            ids, self._acked = self._acked, []
        return ids

    def give_back(self, ids: list[str]) -> None:
        """A fetch that failed (Redis away) acknowledged nothing: note the ids again."""
        with self._lock:
            self._acked[:0] = ids

    def flush(self) -> None:
        ids = self.taken()
        if ids:
            try:
                self.broker.fetch_and_ack(self.queue_name, 0, ids)
            except REDIS_UNREACHABLE as e:
                self.give_back(ids)
                raise ConnectionClosed(e) from None

    def __next__(self) -> Any:
        self.broker.acking = self  # this thread's fetches take this consumer's ids
        return super().__next__()

    def close(self) -> None:
        self._closed = True
        try:
            self.flush()
        finally:
            super().close()


class Broker(RedisBroker):
    """dramatiq's Redis broker, fetching each message with the id it is stored under and
    acknowledging finished messages in the same round trip."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fetch = self.client.register_script(_FETCH)
        self.queue_keys = QueueKeys(self.namespace)
        self._acking = threading.local()

    @property
    def consumer_class(self) -> type:
        return AckOnFetch

    @property
    def acking(self) -> AckOnFetch | None:
        """The consumer fetching on this thread (each queue has a consumer thread)."""
        return getattr(self._acking, "consumer", None)

    @acking.setter
    def acking(self, consumer: AckOnFetch) -> None:
        self._acking.consumer = consumer

    def do_fetch(self, queue_name: str, prefetch: int) -> list[Fetched | None]:
        ns = self.namespace
        if self._should_do_maintenance("fetch"):  # what dramatiq's fetch does by chance
            self.scripts["dispatch"](keys=[ns], args=[
                "qsize", current_millis(), queue_name, self.broker_id, self.heartbeat_timeout,
                self.dead_message_ttl, 1, self._max_unpack_size()])
        consumer = self.acking
        ids = consumer.taken() if consumer is not None and consumer.queue_name == queue_name \
            else []
        try:
            return self.fetch_and_ack(queue_name, prefetch, ids)
        except BaseException:
            if ids:
                consumer.give_back(ids)  # type: ignore[union-attr]
            raise

    def fetch_and_ack(self, queue_name: str, prefetch: int,
                      ids: list[str]) -> list[Fetched | None]:
        """Acknowledge ``ids`` (messages of ``queue_name`` this worker finished), then
        fetch up to ``prefetch`` messages: one round trip."""
        flat = self._fetch(
            keys=[self.queue_keys.heartbeats, self.queue_keys.queue(queue_name),
                  self.queue_keys.messages(queue_name),
                  self.queue_keys.acks(self.broker_id, queue_name)],
            args=[current_millis(), self.broker_id, prefetch, *ids])
        out: list[Fetched | None] = []
        for rid, data in zip(flat[::2], flat[1::2]):
            if data is None:  # dramatiq warns and leaves the id in the ack set (the sweeper)
                out.append(None)
                continue
            item = Fetched(data)
            item.rid, item.queue = rid.decode(), queue_name
            out.append(item)
        return out
