"""The dramatiq Redis broker and its middleware, hardened against what a foreign producer
may put on the queue.

dramatiq on its own strands a message it cannot decode, acks by the id the payload claims,
and kills the worker thread that finishes a message whose ``queue_name`` it has no
consumer for (``KeyError``). :func:`build_broker` puts together the pieces that prevent
this, each in its own module:

* :class:`~worker.queue.fetch.Broker` (worker/queue/fetch.py) fetches each message with
  the id it is stored under and acknowledges finished ones with the next fetch
  (:class:`~worker.queue.fetch.AckOnFetch`);
* :class:`~worker.queue.envelope.EnvelopeEncoder` (worker/queue/envelope.py) never fails
  to decode: a payload that is not a valid envelope becomes a message for the
  ``omitama_malformed`` actor, kept for ``review rejected`` and acknowledged;
* a message for one of the worker's own actors is only run when our worker signed it,
  and a producer's options cannot make dramatiq send messages for it (see
  :mod:`worker.queue.internal` for why, how, and the threat model);
* :class:`~worker.queue.retries.PatientRetries` and
  :class:`~worker.queue.stop_signal.OneStopSignal` replace or add to dramatiq's
  middleware.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import ConnectionClosed
from dramatiq.middleware import (AgeLimit, AsyncIO, Callbacks, CurrentMessage, Pipelines,
                                 Retries, ShutdownNotifications)

from .envelope import EnvelopeEncoder
from .fetch import Broker
from .internal import Signer, SignInternal
from .process_setup import ProcessSetup, prometheus_middleware
from .retries import PatientRetries
from .stop_signal import OneStopSignal
from .windows import DueWindows
from ..settings import Settings
from ..store.client import REDIS_UNREACHABLE
from ..store.connect import broker_client
from ..store.kept_secrets import queue_secret
from ..store.keys import Keys


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
