"""Dramatiq actors: one per ILS event type, named as the type, on queue ``notifications``.

Each actor is thin: validate the event (a refusal is kept for ``review
rejected`` and the message acknowledged), call the domain code, and turn
"try again later" into ``dramatiq.Retry`` with the delay the policy chose.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable

import dramatiq
from dramatiq.middleware import CurrentMessage

from . import activity
from ..app import digest, holds, registration
from .broker import build_broker
from .envelope import QUEUE
from .internal import DIGEST_ACTOR, GAVE_UP_ACTOR, MALFORMED_ACTOR
from ..ils.events import AddressRegistered, AddressRemoved, HoldCancelled, HoldPickedUp, HoldReady
from ..app.intake import Refused, accept, refuse_message
from ..app.refusals import payload_fingerprint
from ..app.registration import RegistrationResult
from ..holds.outcome import Outcome
from ..runtime import Runtime, get_runtime
from ..settings import get_settings
from ..store.vocab import HoldStatus

log = logging.getLogger(__name__)
broker = build_broker(get_settings())

# Errors other than our own Retry (Redis down, a bug) are retried this many times with
# the [delivery] backoff (30 s doubling up to 30 min: about 2 h in all), then the hold
# is phoned (see gave_up).
ERROR_RETRIES = 8


def _retry_when(retries: int, exc: BaseException) -> bool:
    return isinstance(exc, dramatiq.Retry) or retries < ERROR_RETRIES


def refusal_key(msg: dramatiq.Message[Any]) -> str:
    """What a refusal of ``msg`` is kept under (once per key): the same on every delivery
    and retry of one message, different for two messages. Computed here from what the
    message carries, never read from it: the producer chooses ``message_id`` — "" or an
    id it reuses would fold different refused events into one row of ``review
    rejected`` and lose the others — so the event it carries is part of the key (a few
    µs, and only when a refusal is kept); and no option a producer can set names the row
    (an ``omitama_raw_sha`` option used to, and folded two refusals into one)."""
    carried = json.dumps(msg.args, sort_keys=True, default=repr)  # ASCII: surrogates too
    return f"msg:{msg.message_id}:{payload_fingerprint(carried)}"


def _message_key() -> str | None:
    msg = CurrentMessage.get_current_message()
    return None if msg is None else refusal_key(msg)


MessageKey = Callable[[], str | None]
Handler = Callable[[Runtime, Any, MessageKey], Awaitable[None]]


def event_actor(handle: Handler) -> Any:
    """The actor for the event type named like ``handle``: validate the event (a refusal
    is kept — see worker.app.intake — and the message acknowledged), then
    ``handle(runtime, event, message_key)`` (``message_key()`` names a refusal)."""
    name = handle.__name__
    d = get_settings().delivery

    async def actor(event: Any) -> None:
        rt = get_runtime()
        got = await accept(rt, event, name, key=_message_key)
        if isinstance(got, Refused):
            if got.listed is not None:  # a refused hold_ready, listed for a call
                _outcome(got.listed)
            return
        await handle(rt, got, _message_key)

    actor.__name__ = actor.__qualname__ = name
    return dramatiq.actor(actor_name=name, queue_name=QUEUE,
                          retry_when=_retry_when, on_retry_exhausted=GAVE_UP_ACTOR,
                          min_backoff=int(d.min_backoff_s * 1000),
                          max_backoff=int(d.max_backoff_s * 1000))(actor)


def _outcome(result: holds.Result, hold_id: str | None = None) -> None:
    activity.tally(result.outcome.value, hold_id)


@event_actor
async def hold_ready(rt: Runtime, ev: HoldReady, key: MessageKey) -> None:
    result = await holds.notify_hold_ready(rt, ev)
    _outcome(result, ev.hold_id)
    if result.followup is not None:  # a digest's: other holds mailed on the way
        activity.tally_all(result.followup.results)
    # a hold gathering in its window is done here: the pollers send the window
    # (worker/queue/windows.py)
    if result.outcome in (Outcome.RETRY, Outcome.BUSY):
        raise dramatiq.Retry(result.detail or result.outcome.value, delay=result.delay_ms)


@dramatiq.actor(actor_name=DIGEST_ACTOR, queue_name=QUEUE, max_retries=ERROR_RETRIES,
                min_backoff=int(get_settings().delivery.min_backoff_s * 1000),
                max_backoff=int(get_settings().delivery.max_backoff_s * 1000))
async def digest_window(window: dict[str, Any]) -> None:
    """A digest window's message at the window's end, as versions before 2026-12-07
    scheduled one for every window (signed like the other internal actors): kept so that
    windows opened before an upgrade are sent on time. Nothing sends it now: windows are
    found due by the pollers (worker/queue/windows.py)."""
    activity.tally_all((await digest.window_due(get_runtime(), window)).results)




@event_actor
async def hold_cancelled(rt: Runtime, ev: HoldCancelled, key: MessageKey) -> None:
    await holds.close_hold(rt, ev.hold_id, HoldStatus.CANCELLED)


@event_actor
async def hold_picked_up(rt: Runtime, ev: HoldPickedUp, key: MessageKey) -> None:
    await holds.close_hold(rt, ev.hold_id, HoldStatus.PICKED_UP)


@event_actor
async def address_registered(rt: Runtime, ev: AddressRegistered, key: MessageKey) -> None:
    if await registration.register(rt, ev, key=key()) is RegistrationResult.BUSY:
        raise dramatiq.Retry("another worker is sending this confirmation",
                             delay=int(rt.settings.delivery.lease_s * 1000))


@event_actor
async def address_removed(rt: Runtime, ev: AddressRemoved, key: MessageKey) -> None:
    await registration.removed_event(rt.store, ev)


@dramatiq.actor(actor_name=MALFORMED_ACTOR, queue_name=QUEUE, max_retries=5)
async def malformed(raw: str, problem: str) -> None:
    """A message that was not a valid envelope (see worker.queue.envelope): keep it, once, and
    list the hold it still names (see worker.app.intake.refuse_message). Built by the
    decoder in-process; on the queue only as our own signed retry (worker.queue.internal)."""
    rt = get_runtime()
    listed = await refuse_message(rt.store, rt.settings, raw, problem, _message_key())
    if listed is not None:
        _outcome(listed)


@dramatiq.actor(actor_name=GAVE_UP_ACTOR, queue_name=QUEUE, max_retries=5)
async def gave_up(message: dict[str, Any], info: dict[str, Any]) -> None:
    """An event actor failed ERROR_RETRIES times: make sure no ready hold goes unannounced.
    Sent by dramatiq's Retries and signed by our worker; a producer's forgery never gets
    here (worker.queue.internal), so the traceback in ``message`` is ours."""
    rt = get_runtime()
    error = (message.get("options", {}).get("traceback") or "").strip().splitlines()[-1:]
    detail = error[0] if error else "worker error"
    log.error("gave up on %s message %s after %s retries: %s", message.get("actor_name"),
              message.get("message_id"), info.get("retries"), detail)
    if message.get("actor_name") == "hold_ready":
        result = await holds.give_up(rt, message["args"][0], detail)
        if result is not None:
            _outcome(result)
