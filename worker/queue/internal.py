"""The worker's own actors, and the signature that tells their messages from a producer's.

Two actors are not event types: ``omitama_malformed`` (a message that was no valid
envelope, kept for ``review rejected``; the decoder builds it in-process) and
``omitama_gave_up`` (dramatiq's Retries sends it when an event actor failed
``ERROR_RETRIES`` times; it lists the hold as ``worker_error`` without mailing). Both
reach the queue as ordinary messages — a give-up is enqueued, and a failed run of
either is retried through the delayed queue — so a producer could write them too, and
make any row appear in ``review rejected`` or put a hold on the call list as
``worker_error`` without it ever being mailed.

So every message for one of these actors is signed when our worker enqueues it
(:class:`SignInternal`, dramatiq's ``before_enqueue``: an HMAC-SHA256 over the actor
name and the arguments, in ``options.omitama_sig``), and the decoder
(:class:`worker.queue.broker.EnvelopeEncoder`) refuses one without a valid signature
like any malformed envelope: it is kept once in ``review rejected``, and when the
event inside names a hold (a forged give-up wrapping a hold_ready) the hold is listed
once as ``invalid_event`` (see worker.app.intake.carried_event), never mailed — as for
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
nothing: the HMAC is computed for the two internal actors only.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from typing import Any, Callable

import dramatiq
from dramatiq.middleware import Middleware

MALFORMED_ACTOR = "omitama_malformed"
GAVE_UP_ACTOR = "omitama_gave_up"
INTERNAL = frozenset({MALFORMED_ACTOR, GAVE_UP_ACTOR})
SIG = "omitama_sig"


def signed_text(actor: str, args: Any) -> bytes:
    """What is signed: the actor and its arguments as JSON, the same bytes before
    enqueueing (tuples, any key order) and after decoding."""
    plain = json.loads(json.dumps([actor, args]))  # tuples become lists, as on the queue
    return json.dumps(plain, sort_keys=True, separators=(",", ":")).encode()


class Signer:
    """Signs and checks internal messages with the deployment's secret, loaded on first
    use by ``load`` (a Redis read, see worker.store.queue_secret) and cached."""

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
