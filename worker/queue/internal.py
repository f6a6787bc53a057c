"""The worker's own actors, and the signature that tells their messages from a producer's.

Three actors are not event types: ``omitama_malformed`` (a message that was no valid
envelope, kept for ``review rejected``; the decoder builds it in-process),
``omitama_gave_up`` (dramatiq's Retries sends it when an event actor failed
``ERROR_RETRIES`` times; it lists the hold as ``worker_error`` without mailing) and
``omitama_digest`` (a digest window's one message, as versions before 2026-12-07
scheduled one for the window's end; still handled, for windows opened before an upgrade:
worker/app/digest.py). They reach the queue as ordinary messages — a give-up (and, before,
a window's message) is enqueued, and a failed run of any is retried through the delayed
queue — so a producer could write them too, and make any row appear in ``review
rejected``, put a hold on the call list as ``worker_error`` without it ever being
mailed, or send a card's digest before its window ends.

So every message for one of these actors is signed when our worker enqueues it
(:class:`SignInternal`, dramatiq's ``before_enqueue``: an HMAC-SHA256 over the actor
name and the arguments, in ``options.omitama_sig``), and the decoder
(:class:`worker.queue.envelope.EnvelopeEncoder`) refuses one without a valid signature
like any malformed envelope: it is kept once in ``review rejected``, and when the
event inside names a hold (a forged give-up wrapping a hold_ready) the hold is listed
once as ``invalid_event`` (see worker.ils.messages.carried_event), never mailed — as for
every refused envelope. The decoder also drops the options through which dramatiq
would send a message on a producer's behalf (``on_success``, ``pipe_target``, ...):
our worker would sign whatever they name.

The key is per deployment, kept in Redis under our key prefix (``queue:secret``,
created once with SET NX, read once per process and cached). Threat model, honestly:
this stops producers that only speak the queue protocol — the README's HSET+RPUSH
recipe, careless or hostile — from running the internal actors. A producer that can
read our keys can sign anything, and one with full Redis access can write holds and
call lists directly; only Redis ACLs that give producers dramatiq's namespace and
nothing under ``[redis] key_prefix`` make that a real boundary. Ordinary events pay
nothing: the HMAC is computed for the internal actors only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any, Callable

import dramatiq
from dramatiq.middleware import Middleware

from ..ils.messages import MALFORMED_ACTOR

log = logging.getLogger(__name__)
GAVE_UP_ACTOR = "omitama_gave_up"
DIGEST_ACTOR = "omitama_digest"
INTERNAL = frozenset({MALFORMED_ACTOR, GAVE_UP_ACTOR, DIGEST_ACTOR})
SIG = "omitama_sig"
_MAX_COUNT = 2 ** 53
_MAX_DELAY_MS = 7 * 86400 * 1000  # dramatiq's own limit on a delay


def signed_text(actor: str, args: Any) -> bytes:
    """What is signed: the actor and its arguments as JSON, the same bytes before
    enqueueing (tuples, any key order) and after decoding."""
    plain = json.loads(json.dumps([actor, args]))  # tuples become lists, as on the queue
    return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()


class Signer:
    """Signs and checks internal messages with the deployment's secret, loaded on first
    use by ``load`` (a Redis read, see worker.store.kept_secrets) and cached."""

    def __init__(self, load: Callable[[], bytes]) -> None:
        self._load = load
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def key(self) -> bytes:
        if self._key is None:
            with self._lock:
                if self._key is None:
                    self._key = self._load()
        return self._key

    def sign(self, actor: str, args: Any) -> str:
        return hmac.new(self.key(), signed_text(actor, args), hashlib.sha256).hexdigest()

    def valid(self, actor: str, args: Any, sig: Any) -> bool:
        """Whether ``sig`` is our signature of this message (no Redis call when it has
        none: an unsigned forgery is refused without the secret)."""
        if not isinstance(sig, str) or len(sig) != 64:
            return False
        return hmac.compare_digest(sig, self.sign(actor, args))


class SignInternal(Middleware):
    """Signs every message for an internal actor our worker enqueues: give-ups sent by
    dramatiq's Retries and retries of either internal actor. Others pass untouched."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def before_enqueue(self, broker: dramatiq.Broker, message: Any, delay: int | None) -> None:
        if message.actor_name in INTERNAL:
            message.options[SIG] = self.signer.sign(message.actor_name, message.args)


def internal_problem(fields: Any, signer: Signer | None) -> str | None:
    """Why ``fields``, a message for one of the worker's own actors, was not made by our
    worker (no valid signature), or None — also for any message to another actor."""
    actor = fields.get("actor_name") if isinstance(fields, dict) else None
    if not isinstance(actor, str) or actor not in INTERNAL:  # any JSON value may come
        return None
    options = fields.get("options")
    sig = options.get(SIG) if isinstance(options, dict) else None
    if signer is not None and signer.valid(actor, fields.get("args"), sig):
        return None
    return (f"actor_name {actor!r} is the worker's own and this message was "
            "not made by the worker: send each event to the actor named as its type")


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < _MAX_COUNT


def _eta(v: Any) -> bool:  # a far-future eta would hold the message in memory for ever
    return (isinstance(v, (int, float)) and not isinstance(v, bool)
            and 0 <= v <= time.time() * 1000 + _MAX_DELAY_MS)


def _text(v: Any) -> bool:
    return isinstance(v, str)


def _no(v: Any) -> bool:
    return False


# The options a message may bring, each of the type dramatiq's middleware expects (a
# wrong one made it fail after the run, and the message was acknowledged: lost): the id
# (a producer's, checked by the decoder), what dramatiq's retries and delays write, ours.
# Every other option steers dramatiq — on_success, on_failure, on_retry_exhausted and
# pipe_target make it send a message, which our worker would sign; max_retries,
# min_backoff, time_limit, throws change how it runs — and is dropped with a warning.
_OPTIONS: dict[str, Callable[[Any], bool]] = {
    "redis_message_id": lambda v: True, "retries": _count, "traceback": _text,
    "requeue_timestamp": _count, "eta": _eta, SIG: _text}


def drop_options(fields: dict[str, Any]) -> None:
    """Drop from a valid envelope the options it may not bring (see ``_OPTIONS``)."""
    options = fields["options"]
    dropped = [k for k, v in options.items() if not _OPTIONS.get(k, _no)(v)]
    if dropped:
        for key in dropped:
            del options[key]
        log.warning("message %s: options %s ignored (a producer sets only "
                    "redis_message_id)", short(fields.get("message_id")),
                    ", ".join(sorted(short(k) for k in dropped)))


def short(value: Any) -> str:
    """``value`` for a log line or a refusal: its repr, cut at 60 characters."""
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:60] + "…"
