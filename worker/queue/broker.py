"""The dramatiq Redis broker, hardened against what a foreign producer may put on the queue.

dramatiq on its own strands a message it cannot decode (its id stays in the
worker's ack set and comes back as a poison message after the worker dies), acks
by the ``options.redis_message_id`` the payload claims (missing: the ack fails;
wrong: the message is never acknowledged and recycles forever), and kills the
worker thread that finishes a message whose ``queue_name`` it has no consumer for
(``KeyError``). Here:

* :class:`Broker` fetches each message together with the id it is stored under
  (``store/lua/fetch.lua``, one round trip as dramatiq's own fetch) and hands both, and
  the queue it came from, to the decoder as :class:`Fetched` bytes;
* a finished message is acknowledged with the next fetch (:class:`AckOnFetch`), not
  in a round trip of its own;
* :class:`EnvelopeEncoder` never fails to decode: it sets the true
  ``redis_message_id`` (so the message is acknowledged exactly once, at no extra
  cost), and a payload that is not a valid envelope for one of our actors on our
  queue is turned into a message for the ``omitama_malformed`` actor on the queue
  it was fetched from, carrying the raw text and the reason, so it is kept for
  ``review rejected`` (and its hold listed, see worker.app.intake) and acknowledged;
* a message for one of the worker's own actors is only run when our worker signed it,
  and a producer's options cannot make dramatiq send messages for it (see
  :mod:`worker.queue.internal` for why, how, and the threat model).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from typing import Any, Callable

import dramatiq
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.errors import ConnectionClosed
from dramatiq.common import current_millis, dq_name
from dramatiq.encoder import JSONEncoder
from dramatiq.middleware import (AgeLimit, AsyncIO, Callbacks, CurrentMessage, Middleware,
                                 Pipelines, Retries, ShutdownNotifications)

from .internal import (DIGEST_ACTOR, GAVE_UP_ACTOR, MALFORMED_ACTOR, Signer, SignInternal,
                       drop_options, internal_problem, short as _short)
from .process_setup import ProcessSetup, prometheus_middleware
from .windows import DueWindows
from ..settings import Settings
from ..store.client import REDIS_UNREACHABLE
from ..store.connect import broker_client
from ..store.queue_keys import QueueKeys
from ..store.kept_secrets import queue_secret
from ..store.keys import Keys
from ..store.scripts import lua

log = logging.getLogger(__name__)
QUEUE = "notifications"
OUR_QUEUES = (QUEUE, dq_name(QUEUE))  # dramatiq names the delayed retries' queue ".DQ"
_FIELDS = {"queue_name", "actor_name", "args", "kwargs", "options", "message_id",
           "message_timestamp"}
_INTERNAL_ARGS = {MALFORMED_ACTOR: (str, str), GAVE_UP_ACTOR: (dict, dict),
                  DIGEST_ACTOR: (dict,)}
_MAX_TS = 2 ** 53  # ms; far beyond any clock, and exact as a float
_FETCH = lua("fetch")


class Fetched(bytes):
    """A message's data as fetched, with the id it is stored under and its queue."""
    rid: str
    queue: str


def raw_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def envelope_problem(fields: Any, actors: set[str]) -> str | None:
    """Why ``fields`` is not a message our worker can run, or None.

    ``queue_name`` must be ours (``notifications`` or its delayed form
    ``notifications.DQ``): dramatiq finishes a message on the consumer its
    queue_name names, and has none for another queue. ``message_timestamp`` may
    be an integer or a finite float of milliseconds in [0, 2**53) — what
    ``time.time() * 1000`` gives in Python or ``Date.now()`` in JavaScript; it is
    kept as whole milliseconds (it only dates the message, nothing is decided by
    its fraction). NaN, infinities, negatives and booleans are refused."""
    if not isinstance(fields, dict):
        return f"message must be a JSON object, not {type(fields).__name__}"
    for key in ("queue_name", "actor_name", "args", "kwargs", "options"):
        if key not in fields:
            return f"message field {key} is missing"
    extra = set(fields) - _FIELDS
    if extra:
        return f"unknown message field(s): {', '.join(sorted(extra))}"
    actor = fields["actor_name"]
    if not isinstance(actor, str) or actor not in actors:
        return (f"actor_name {_short(actor)} is not an event type this worker "
                f"handles ({', '.join(sorted(a for a in actors if not a.startswith('omitama_')))})")
    if fields["queue_name"] not in OUR_QUEUES:
        return (f"queue_name {_short(fields['queue_name'])} is not this worker's queue: "
                f"use {QUEUE!r}")
    if not isinstance(fields["options"], dict):
        return "options must be a JSON object"
    if not isinstance(fields["kwargs"], dict) or fields["kwargs"]:
        return "kwargs must be an empty object: the event goes in args"
    args, types = fields["args"], _INTERNAL_ARGS.get(actor)
    if not isinstance(args, list) or len(args) != (len(types) if types else 1) or (
            types and not all(isinstance(a, t) for a, t in zip(args, types))):
        return "args must be a list holding exactly one event object"
    if not isinstance(fields.get("message_id", ""), str):
        return "message_id must be a string"
    ts = fields.get("message_timestamp", 0)
    if (not isinstance(ts, (int, float)) or isinstance(ts, bool)
            or not (math.isfinite(ts) and 0 <= ts < _MAX_TS)):
        return "message_timestamp must be a number of milliseconds since 1970 (e.g. 1795915273584)"
    return None


class EnvelopeEncoder(JSONEncoder):
    """``signer`` checks messages for the worker's own actors (None: all refused)."""

    def __init__(self, actor_names: Callable[[], set[str]],
                 signer: Signer | None = None) -> None:
        self.actor_names = actor_names
        self.signer = signer

    def decode(self, data: bytes) -> dict[str, Any]:
        """Every payload becomes a message that runs and is acknowledged once. ``data``
        fetched by :class:`Broker` says where it came from; other bytes (a test, a
        tool) are taken as from the queue their ``queue_name`` names."""
        rid, queue = getattr(data, "rid", None), getattr(data, "queue", None)
        problem: str | None
        try:
            fields = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            fields, problem = None, f"message is not valid UTF-8 JSON: {e}"
        else:
            problem = (internal_problem(fields, self.signer)
                       or envelope_problem(fields, self.actor_names()))
        if problem is None:
            drop_options(fields)
            options = fields["options"]
            claimed = options.get("redis_message_id")
            if isinstance(claimed, str) and rid is not None and claimed != rid:
                log.warning("message %s: options.redis_message_id %s is not the id it was "
                            "queued under (%s); acknowledged by the true id",
                            fields.get("message_id"), _short(claimed), rid)
            if rid is not None:
                options["redis_message_id"] = rid
            if queue is not None:  # a mislabelled .DQ would be acked on the wrong queue
                fields["queue_name"] = queue
            if isinstance(fields.get("message_timestamp"), float):
                fields["message_timestamp"] = int(fields["message_timestamp"])
            return fields
        sha = raw_sha(data)
        kept: dict[str, Any] = {}
        if rid is not None:
            kept["redis_message_id"] = rid
        elif isinstance(fields, dict) and isinstance(fields.get("options"), dict) and \
                isinstance(fields["options"].get("redis_message_id"), str):
            kept["redis_message_id"] = fields["options"]["redis_message_id"]
        # built on the queue it was fetched from: never a queue we have no consumer for
        return {"queue_name": queue if queue in OUR_QUEUES else QUEUE,
                "actor_name": MALFORMED_ACTOR,
                "args": [data.decode("utf-8", "replace"), problem], "kwargs": {},
                "options": kept, "message_id": f"malformed-{sha}",
                "message_timestamp": int(time.time() * 1000)}


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


def _retry_line_at_debug(record: logging.LogRecord) -> bool:
    """dramatiq's "Retrying message 'ID' in 4998 milliseconds." at DEBUG, not INFO: every
    hold waiting in a digest window is such a retry, and an operator read a failure into
    a digest going as planned. Our own lines say why a hold waits (a relay failure at
    WARNING with its delay; the first hold gathered of each interval at INFO)."""
    if isinstance(record.msg, str) and record.msg.startswith("Retrying message"):
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
    return True


class PatientRetries(Retries):
    """dramatiq's Retries, but a retry that cannot be scheduled because Redis is away
    is tried again until Redis answers. Plain Retries logs the failure and lets the
    worker acknowledge the message once Redis is back: the message — and with it a
    hold never claimed — would be gone without a trace."""

    PATIENCE_S = 120.0

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.logger.addFilter(_retry_line_at_debug)

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        if isinstance(exception, dramatiq.Retry) and exception.delay is not None:
            # A planned retry (a hold waiting in its digest window, busy with another
            # worker, a relay's 4xx — each counted or logged where it is decided): as
            # dramatiq's own, without the traceback it formats and the INFO line it logs
            # per message (both for an exception nobody reads; every line of a worker
            # process is relayed through dramatiq's main process).
            delay = exception.delay
            message.options["retries"] = message.options.get("retries", 0) + 1
            message.options["requeue_timestamp"] = int(time.time() * 1000)
            message.options.pop("traceback", None)
            self.logger.debug("Retrying message %r in %d milliseconds.", message.message_id,
                              delay)
            return self._patiently(lambda: broker.enqueue(message, delay=delay))
        return self._patiently(lambda: super(PatientRetries, self).after_process_message(
            broker, message, result=result, exception=exception))

    def _patiently(self, step: Callable[[], Any]) -> None:
        deadline = time.monotonic() + self.PATIENCE_S
        while True:
            try:
                step()
                return
            except REDIS_UNREACHABLE:
                if time.monotonic() > deadline:
                    raise  # not acknowledged either: the sweeper finds it in the ack set
                time.sleep(1.0)


class OneStopSignal(Middleware):
    """A worker process stops once, however many SIGTERMs reach it.

    systemd (and ``kill -- -PGID``) signals every process of the worker, and dramatiq's
    main process forwards the signal too: each worker process gets two at once. dramatiq
    takes the second for "kill now" and calls ``sys.exit``, which then waits for ever for
    the AsyncIO event-loop thread (not a daemon) — the worker hung until SIGKILL. Here a
    repeat within ``REPEAT_S`` is the same stop (dramatiq finishes what it is running and
    puts back what it prefetched); a later one still means "exit now" (what was fetched
    and not acknowledged is re-queued by the sweeper or dramatiq's maintenance)."""

    REPEAT_S = 5.0

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        stop = signal.getsignal(signal.SIGTERM)
        if not callable(stop):
            return
        first: list[float] = []

        def on_term(signum: int, frame: Any) -> None:
            if not first:
                first.append(time.monotonic())
                stop(signum, frame)
            elif time.monotonic() - first[0] >= self.REPEAT_S:
                log.warning("second stop signal: exiting now")
                os._exit(3)  # dramatiq's RET_KILLED

        signal.signal(signal.SIGTERM, on_term)


def _load_secret(broker: RedisBroker, keys: Keys) -> bytes:
    """The queue secret, read once. Redis away at that moment is dramatiq's connection
    error: its consumer says so in one line and reconnects, and the message it was
    decoding stays in the ack set for the sweeper (a plain Redis error here printed a
    traceback as "an unexpected error")."""
    try:
        return queue_secret(broker.client, keys)
    except REDIS_UNREACHABLE as e:
        raise ConnectionClosed(f"Redis unreachable while reading the queue secret: {e}") from None


# dramatiq's default middleware that no message of ours can use: max_age, notify_shutdown,
# on_success/on_failure and pipe_target are set by none of our actors, and the decoder
# drops them from what a producer sends (worker/queue/internal.py). Each middleware is
# called at every step of every message (before and after processing, ack): these four
# cost ~21 µs a message for nothing (bench/README.md, "What bought what (issue 22)").
_UNUSED = (AgeLimit, ShutdownNotifications, Callbacks, Pipelines)


def build_broker(settings: Settings) -> RedisBroker:
    broker = Broker(client=broker_client(settings.redis), namespace=settings.redis.namespace,
                    heartbeat_timeout=settings.redis.heartbeat_timeout_ms,
                    maintenance_chance=settings.redis.maintenance_chance)
    broker.middleware[:] = [PatientRetries() if type(m) is Retries else m
                            for m in broker.middleware if not isinstance(m, _UNUSED)]
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(OneStopSignal())
    prometheus = prometheus_middleware(settings)
    if prometheus is not None:
        broker.add_middleware(prometheus)
    broker.add_middleware(ProcessSetup(settings))
    broker.add_middleware(DueWindows(settings.worker.threads))
    keys = Keys(settings.redis.key_prefix)
    signer = Signer(lambda: _load_secret(broker, keys))
    broker.add_middleware(SignInternal(signer))
    dramatiq.set_encoder(EnvelopeEncoder(lambda: set(broker.actors), signer))
    dramatiq.set_broker(broker)
    return broker
