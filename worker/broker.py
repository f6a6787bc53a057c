"""The dramatiq Redis broker, hardened against what a foreign producer may put on the queue.

dramatiq on its own strands a message it cannot decode (its id stays in the
worker's ack set and comes back as a poison message after the worker dies) and
cannot ack a message without ``options.redis_message_id``. Here:

* :class:`EnvelopeEncoder` never fails to decode: a payload that is not a valid
  envelope for one of our actors is turned into a message for the
  ``omitama_malformed`` actor, carrying the raw text and the reason, so it is
  kept for ``review rejected`` and acknowledged like any other message;
* :class:`RecoverRedisId` finds the broker id of a message that arrived without
  ``redis_message_id`` (by content, in the queue's hash) so the ack works.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import dq_name
from dramatiq.encoder import JSONEncoder
from dramatiq.middleware import AsyncIO, CurrentMessage, Middleware, Retries

from .process_setup import ProcessSetup, prometheus_middleware
from .settings import Settings

QUEUE = "notifications"
MALFORMED_ACTOR = "omitama_malformed"
GAVE_UP_ACTOR = "omitama_gave_up"
RAW_SHA = "omitama_raw_sha"
_FIELDS = {"queue_name", "actor_name", "args", "kwargs", "options", "message_id",
           "message_timestamp"}


def raw_sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


def envelope_problem(fields: Any, actors: set[str]) -> str | None:
    """Why ``fields`` is not a message our worker can run, or None."""
    if not isinstance(fields, dict):
        return f"message must be a JSON object, not {type(fields).__name__}"
    for key in ("queue_name", "actor_name", "args", "kwargs", "options"):
        if key not in fields:
            return f"message field {key} is missing"
    extra = set(fields) - _FIELDS
    if extra:
        return f"unknown message field(s): {', '.join(sorted(extra))}"
    if not isinstance(fields["actor_name"], str) or fields["actor_name"] not in actors:
        return (f"actor_name {fields['actor_name']!r} is not an event type this worker "
                f"handles ({', '.join(sorted(a for a in actors if not a.startswith('omitama_')))})")
    if not isinstance(fields["queue_name"], str):
        return "queue_name must be a string"
    if not isinstance(fields["options"], dict):
        return "options must be a JSON object"
    if not isinstance(fields["kwargs"], dict) or fields["kwargs"]:
        return "kwargs must be an empty object: the event goes in args"
    if not isinstance(fields["args"], list) or len(fields["args"]) != (
            2 if fields["actor_name"] in (MALFORMED_ACTOR, GAVE_UP_ACTOR) else 1):
        return "args must be a list holding exactly one event object"
    if not isinstance(fields.get("message_id", ""), str):
        return "message_id must be a string"
    ts = fields.get("message_timestamp", 0)
    if not isinstance(ts, int) or isinstance(ts, bool):
        return "message_timestamp must be an integer (milliseconds)"
    return None


class EnvelopeEncoder(JSONEncoder):
    def __init__(self, actor_names: Callable[[], set[str]]) -> None:
        self.actor_names = actor_names

    def decode(self, data: bytes) -> dict[str, Any]:
        problem: str | None
        try:
            fields = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            fields, problem = None, f"message is not valid UTF-8 JSON: {e}"
        else:
            problem = envelope_problem(fields, self.actor_names())
        if problem is None:
            if not isinstance(fields["options"].get("redis_message_id"), str):
                fields["options"][RAW_SHA] = raw_sha(data)  # only then: see RecoverRedisId
            return fields
        sha = raw_sha(data)
        options: dict[str, Any] = {RAW_SHA: sha}
        queue = QUEUE
        if isinstance(fields, dict):
            if isinstance(fields.get("queue_name"), str):
                queue = fields["queue_name"]
            opts = fields.get("options")
            if isinstance(opts, dict) and isinstance(opts.get("redis_message_id"), str):
                options["redis_message_id"] = opts["redis_message_id"]
        return {"queue_name": queue, "actor_name": MALFORMED_ACTOR,
                "args": [data.decode("utf-8", "replace"), problem], "kwargs": {},
                "options": options, "message_id": f"malformed-{sha}",
                "message_timestamp": int(time.time() * 1000)}


class RecoverRedisId(Middleware):
    """Give a message that came without ``options.redis_message_id`` its broker id back."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        options = message.options
        if isinstance(options.get("redis_message_id"), str) or RAW_SHA not in options:
            return
        assert isinstance(broker, RedisBroker)
        client: redis.Redis = broker.client
        base = message.queue_name.removesuffix(".DQ")
        for queue in (base, dq_name(base)):
            key = f"{broker.namespace}:{queue}.msgs"
            for rid, data in client.hscan_iter(key):
                if raw_sha(data) == options[RAW_SHA]:
                    options["redis_message_id"] = rid.decode()
                    return
        broker.logger.error("message %s has no redis_message_id and was not found in the queue;"
                            " it cannot be acknowledged", message.message_id)


class PatientRetries(Retries):
    """dramatiq's Retries, but a retry that cannot be scheduled because Redis is away
    is tried again until Redis answers. Plain Retries logs the failure and lets the
    worker acknowledge the message once Redis is back: the message — and with it a
    hold never claimed — would be gone without a trace."""

    PATIENCE_S = 120.0

    def after_process_message(self, broker: dramatiq.Broker, message: Any, *,
                              result: Any = None, exception: BaseException | None = None) -> None:
        deadline = time.monotonic() + self.PATIENCE_S
        while True:
            try:
                return super().after_process_message(broker, message, result=result,
                                                     exception=exception)
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise  # not acknowledged either: the sweeper finds it in the ack set
                time.sleep(1.0)


def build_broker(settings: Settings) -> RedisBroker:
    broker = RedisBroker(url=settings.redis.url, namespace=settings.redis.namespace,
                         heartbeat_timeout=settings.redis.heartbeat_timeout_ms,
                         maintenance_chance=settings.redis.maintenance_chance)
    broker.middleware[:] = [PatientRetries() if type(m) is Retries else m
                            for m in broker.middleware]
    broker.add_middleware(AsyncIO())
    broker.add_middleware(CurrentMessage())
    broker.add_middleware(RecoverRedisId())
    prometheus = prometheus_middleware(settings)
    if prometheus is not None:
        broker.add_middleware(prometheus)
    broker.add_middleware(ProcessSetup(settings))
    dramatiq.set_encoder(EnvelopeEncoder(lambda: set(broker.actors)))
    dramatiq.set_broker(broker)
    return broker
