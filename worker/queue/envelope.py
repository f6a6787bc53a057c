"""The envelope of a queued message: what makes a payload a message our worker can run.

dramatiq on its own strands a message it cannot decode (its id stays in the worker's ack
set and comes back as a poison message after the worker dies) and acks by the
``options.redis_message_id`` the payload claims (missing: the ack fails; wrong: the
message is never acknowledged and recycles forever). :class:`EnvelopeEncoder` never
fails to decode: it sets the true ``redis_message_id`` (the fetch, worker/queue/fetch.py,
says which), so the message is acknowledged exactly once, at no extra cost; and a payload
that is not a valid envelope for one of our actors on our queue is turned into a message
for the ``omitama_malformed`` actor on the queue it was fetched from, carrying the raw
text and the reason, so it is kept for ``review rejected`` (and its hold listed, see
worker.app.intake) and acknowledged. A message for one of the worker's own actors is
only run when our worker signed it (see :mod:`worker.queue.internal`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from typing import Any, Callable

from dramatiq.common import dq_name
from dramatiq.encoder import JSONEncoder

from .internal import (DIGEST_ACTOR, GAVE_UP_ACTOR, MALFORMED_ACTOR, Signer, drop_options,
                       internal_problem, short as _short)

log = logging.getLogger(__name__)
QUEUE = "notifications"
OUR_QUEUES = (QUEUE, dq_name(QUEUE))  # dramatiq names the delayed retries' queue ".DQ"
_FIELDS = {"queue_name", "actor_name", "args", "kwargs", "options", "message_id",
           "message_timestamp"}
_INTERNAL_ARGS = {MALFORMED_ACTOR: (str, str), GAVE_UP_ACTOR: (dict, dict),
                  DIGEST_ACTOR: (dict,)}
_MAX_TS = 2 ** 53  # ms; far beyond any clock, and exact as a float


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
        fetched by :class:`worker.queue.fetch.Broker` says where it came from; other
        bytes (a test, a tool) are taken as from the queue their ``queue_name`` names."""
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
