"""Hold notices: decide, send or list for a call, and record — once per hold.

Exactly one notice per hold_id: ``claim_hold.lua`` lets one worker at a time own
a hold (a lease of ``[delivery] lease_s``), and a hold that reached an outcome
(sent, phoned, cancelled, picked up) is never claimed again, whatever the
redeliveries and duplicates.

Fencing. Every claim (the first, a retry, the takeover of a lease whose worker died
or stalled) gets a token of its own, and ``finish_hold.lua`` records an outcome only
for the hold's latest token: a worker whose lease was taken over is told "lost",
writes nothing and reports nothing (``Outcome.LOST``), so a hold is never counted as
mailed twice, nor listed after it was mailed. Fencing cannot recall a mail, so the
send is bounded as well: it must be over within ``SEND_SHARE`` of the lease after the
claim, the rest of the lease being for recording the outcome and for clocks that
differ between hosts. Waiting for a pooled connection, connecting and MAIL/RCPT/DATA
are cut at that deadline; the message itself goes out only while a whole
``[smtp] timeout`` is left for the relay's reply — if not, the lease is first
extended by that much (``extend_lease.lua``, one Redis round trip, only on this slow
path; refused if the hold was taken over) — and is not cut after that (see
worker/mail/transport.py). A send cut short never reached the relay: it is a transient
failure, retried like any other. So a slow relay or a long wait for a connection
costs time (and, if it never fits the lease, ends on the call list), not a second mail.

The remaining duplicate window. The patron may still get the notice twice — with the
*same* Message-ID (the notice token of the first claim), which many mail apps fold
into one — when:

1. the relay took the message but its reply to the final "." did not reach us within
   ``[smtp] timeout`` (a later reply, or the connection broke at that moment): we
   count a transient failure and send again at the retry. This is SMTP's own
   ambiguity (RFC 1047); we chose a possible duplicate over a possible silence;
2. the process dies, or loses Redis, between the relay's 250 and recording "sent"
   (one Redis round trip): the lease runs out, dramatiq redelivers, we send again;
3. recording "sent" comes later than the margin (``(1 - SEND_SHARE) × lease_s``,
   24 s by default: Redis stalled that long), or two hosts' clocks differ by more than
   that: another worker may take over and send again. The late finish is refused
   ("lost", logged as a warning naming the Message-ID); the hold is recorded once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .bounce_effects import apply_failure
from ..mail.compose import new_token
from ..contact import CallReason, decide_contact
from ..errors import EventError, PermanentDeliveryError, TransientDeliveryError
from ..ils.events import MAX_EVENT_BYTES, HoldReady, HoldRef, hold_ref, json_text, parse_event
from ..bounces.failures import failure_entry, smtp_result
from ..jdate import TOKYO, now_tokyo
from ..masking import mask_address
from ..stats.fields import bounce_stats, carrier_bucket
from ..holds.calls import call_due, call_entry
from ..holds.outcome import Outcome
from ..holds.policy import next_retry_delay_s, pickup_passed, retention_s, retry_horizon
from ..runtime import Runtime
from ..settings import Settings
from ..store.core import Claim, Store, now_ms
from ..store.vocab import OPEN_STATUSES, ClaimVerdict, HoldStatus
from ..mail.verp import Sent
from ..store.verp import stamp_return_path

log = logging.getLogger(__name__)

# The share of the lease a send may take, counted from the claim (see the docstring)
SEND_SHARE = 0.8


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    delay_ms: int = 0
    detail: str = ""


async def _phone(store: Store, ev: HoldReady | HoldRef, claim: Claim, reason: CallReason,
                 detail: str = "", stats: dict[str, str] | None = None) -> Result:
    now = now_tokyo()
    call = call_entry(hold_id=ev.hold_id, card_number=ev.card_number,
                      pickup_branch=ev.pickup_branch, pickup_by=ev.pickup_by, reason=reason,
                      title=ev.item.title if isinstance(ev, HoldReady) else ev.title,
                      added_at=now, detail=detail)
    status = await store.finish_hold(ev.hold_id, HoldStatus.PHONED, claim.token, call=call,
                                     due=call_due(ev.pickup_by, now.date()),
                                     fields={"reason": reason.value, **(stats or {})})
    if status == ClaimVerdict.LOST:
        log.warning("hold %s: another worker took it over before it reached the call list",
                    ev.hold_id)
        return Result(Outcome.LOST)
    if status != HoldStatus.PHONED:
        log.info("hold %s: %s before it reached the call list", ev.hold_id, status)
        return Result(Outcome.CLOSED, detail=status)
    log.info("hold %s: on the phone-call list of %s (%s)", ev.hold_id, ev.pickup_branch,
             reason.value)
    return Result(Outcome.PHONED, detail=reason.value)


async def phone_refused(store: Store, settings: Settings, payload: Any,
                        error: str) -> Result | None:
    """A ``hold_ready`` that failed validation is kept for ``review rejected`` (the ILS
    must fix it) *and*, when it still names a hold, card and branch for sure, put on
    that branch's call list: the hold is ready in the ILS whatever the event got wrong,
    and no ready hold may go unannounced. Once listed, a corrected event for the same
    hold is a duplicate: staff phone, no e-mail follows. None when nothing is usable.
    (Called by worker.app.intake.refuse for both ways in, and by give_up.)"""
    ref = hold_ref(payload, set(settings.branches))
    if ref is None:
        return None
    now = now_tokyo()
    claim = await store.claim_hold(
        ref.hold_id, token=new_token(), lease_ms=int(settings.delivery.lease_s * 1000),
        ttl_s=retention_s(ref.pickup_by or now.date(), now, settings.retention.hold_days),
        fields=_listing_fields(payload, ref))
    if claim.verdict != ClaimVerdict.CLAIMED:  # already handled, or a valid event is being sent now
        return Result(Outcome.DUPLICATE if claim.verdict == ClaimVerdict.DONE else Outcome.BUSY,
                      detail=claim.status)
    return await _phone(store, ref, claim, CallReason.INVALID_EVENT, error[:500])


async def notify_hold_ready(rt: Runtime, ev: HoldReady) -> Result:
    d = rt.settings.delivery
    sender = rt.settings.mail.from_address
    now = now_tokyo()
    # the send must be over well before the lease can run out (the lease starts after this)
    deadline = asyncio.get_running_loop().time() + SEND_SHARE * d.lease_s
    claim = await rt.store.claim_hold(
        ev.hold_id, token=new_token(), lease_ms=int(d.lease_s * 1000),
        ttl_s=retention_s(ev.pickup_by, now, rt.settings.retention.hold_days),
        fields={"event": ev.model_dump_json(), "card_number": ev.card_number,
                "pickup_branch": ev.pickup_branch, "pickup_by": ev.pickup_by.isoformat()},
        contact_of=ev.card_number)  # the contact comes in the same round trip
    if claim.verdict == ClaimVerdict.DONE:
        log.info("hold %s: already %s; duplicate ignored", ev.hold_id, claim.status)
        return Result(Outcome.DUPLICATE, detail=claim.status)
    if claim.verdict == ClaimVerdict.BUSY:
        return Result(Outcome.BUSY, delay_ms=claim.busy_ms + 1000)

    if pickup_passed(ev.pickup_by, now):
        return await _phone(rt.store, ev, claim, CallReason.PICKUP_PASSED)
    decision = decide_contact(ev.contact, claim.contact or await rt.store.get_contact(ev.card_number))
    if not decision.by_email:
        assert decision.reason is not None
        return await _phone(rt.store, ev, claim, decision.reason)

    assert decision.envelope is not None
    if rt.settings.digest.gather_s > 0:  # one mail for the card's holds at this branch
        from .digest import gather  # digest builds on this module
        return await gather(rt, ev, claim)
    notice = await stamp_return_path(
        rt.store, rt.settings, rt.composer.hold_ready(ev, decision.envelope, claim.notice),
        Sent("hold", ev.card_number, decision.envelope, ev.hold_id))

    async def extend(seconds: float) -> bool:
        # the relay's reply to the message may take longer than the lease has left
        until = now_ms() + int((seconds + (1 - SEND_SHARE) * d.lease_s) * 1000)
        return await rt.store.extend_lease(ev.hold_id, claim.token, until)
    try:
        reply = await rt.transport.send(notice, deadline, extend)
    except PermanentDeliveryError as e:
        result = smtp_result(e, decision.envelope)
        assert result is not None  # a permanent refusal always carries the reply
        await apply_failure(rt.store, rt.settings, result, card=ev.card_number,
                            hold_id=ev.hold_id, address=decision.envelope, source="smtp",
                            diagnostic=f"{e.code} {e.text}")
        return await _phone(rt.store, ev, claim, CallReason.BOUNCED, f"{e.code} {e.text}",
                            bounce_stats(decision.envelope, result.reason))
    except TransientDeliveryError as e:
        first = datetime.fromtimestamp(claim.first_ms / 1000, TOKYO)
        delay = next_retry_delay_s(claim.attempts, now, retry_horizon(first, ev.pickup_by, d), d)
        if delay is None:
            await rt.store.add_failure(
                failure_entry(ev.card_number, ev.hold_id, decision.envelope, e, sender))
            return await _phone(rt.store, ev, claim, CallReason.DELIVERY_FAILED, str(e))
        # the sweeper looks again if the retry has not come two leases after it was due
        look_again = int((now.timestamp() + delay + 2 * d.lease_s) * 1000)
        status = await rt.store.finish_hold(ev.hold_id, HoldStatus.RETRYING, claim.token,
                                            due=look_again, fields={"last_error": str(e)})
        if status == ClaimVerdict.LOST:  # the retry is the new claimant's business
            log.warning("hold %s: attempt %d failed (%s) after another worker took it over",
                        ev.hold_id, claim.attempts, e)
            return Result(Outcome.LOST, detail=str(e))
        log.warning("hold %s: attempt %d failed (%s); retrying in %.0f s", ev.hold_id,
                    claim.attempts, e, delay)
        return Result(Outcome.RETRY, delay_ms=int(delay * 1000), detail=str(e))

    status = await rt.store.finish_hold(
        ev.hold_id, HoldStatus.SENT, claim.token, card=ev.card_number,
        fields={"message_id": notice.message_id, "sent_ms": int(now.timestamp() * 1000),
                "to": mask_address(decision.envelope), "relay_reply": reply[:200],
                "carrier": carrier_bucket(decision.envelope)})  # for the statistics
    if status == ClaimVerdict.LOST:
        # the relay took it after all, later than the margin: see window 3 in the docstring
        log.warning("hold %s: notice %s was relayed but another worker had taken the hold"
                    " over (our lease ran out); the patron may get it twice", ev.hold_id,
                    notice.message_id)
        return Result(Outcome.LOST)
    # DEBUG, not INFO: the hold in Redis records the send (Message-ID, masked recipient,
    # relay reply) and omitama_notices_total counts it; a line per notice relayed through
    # dramatiq's main process cost ~1/6 of the worker's CPU (README, "Performance")
    log.debug("hold %s: notice %s sent to %s", ev.hold_id, notice.message_id,
              mask_address(decision.envelope))
    if status == HoldStatus.SENT and rt.settings.reminder.enabled:
        from .reminders import schedule  # reminders build on this module
        await schedule(rt, [ev.hold_id], ev.pickup_by)
    return Result(Outcome.SENT if status == HoldStatus.SENT else Outcome.CLOSED, detail=status)


async def close_hold(rt: Runtime, hold_id: str, status: HoldStatus) -> str:
    """hold_cancelled / hold_picked_up: drop an unsent notice, leave the call list."""
    before = await rt.store.close_hold(hold_id, status, ttl_s=rt.settings.retention.hold_days * 86400)
    log.info("hold %s: %s (was %s)", hold_id, status, before)
    return before


def _listing_fields(payload: Any, ref: HoldRef) -> dict[str, str]:
    """What a hold listed from a raw payload keeps. The sweeper re-sends the stored event
    if this worker dies before the hold is listed, so it must read back whole (never cut
    mid-JSON, never text Redis cannot take); one too large for that is stood in for by
    what names the hold: refused again, it is listed all the same."""
    try:
        event = json_text(payload, default=repr)
        whole = len(event.encode()) <= MAX_EVENT_BYTES
    except (ValueError, RecursionError):  # a number too long to write, nesting too deep
        whole = False
    if not whole:
        event = json.dumps({"type": "hold_ready", "hold_id": ref.hold_id,
                            "card_number": ref.card_number, "pickup_branch": ref.pickup_branch})
    return {"event": event, "card_number": ref.card_number, "pickup_branch": ref.pickup_branch,
            "pickup_by": ref.pickup_by.isoformat() if ref.pickup_by else ""}


async def give_up(rt: Runtime, payload: Any, detail: str) -> Result | None:
    """The worker failed on this hold_ready again and again (a bug, Redis trouble, input
    it chokes on): rather than lose the hold, put it on the call list so staff phone the
    patron — as ``worker_error``, or as ``invalid_event`` when the event is refused.
    None when the payload names no hold to phone about.

    The last resort must not fail for the reason the first tries did, so it works from
    what names the hold in the raw payload (:func:`hold_ref`: identifiers, and the title
    and last day only when valid by themselves), never from the parsed event."""
    ref = hold_ref(payload, rt.branches)
    if ref is None:
        return None
    reason, why = CallReason.WORKER_ERROR, detail
    try:  # only to say why; listing the hold does not depend on it
        parse_event(payload, rt.branches)
    except EventError as e:
        reason, why = CallReason.INVALID_EVENT, str(e)
    except Exception as e:  # noqa: BLE001 - parse_event raises only EventError; if not, still list
        log.error("hold %s: the event could not be checked (%s)", ref.hold_id, type(e).__name__)
    h = await rt.store.get_hold(ref.hold_id)
    if h.get("status") in OPEN_STATUSES:
        claim = Claim(ClaimVerdict.CLAIMED, token=h["token"])
    else:
        now = now_tokyo()
        claim = await rt.store.claim_hold(
            ref.hold_id, token=new_token(), lease_ms=int(rt.settings.delivery.lease_s * 1000),
            ttl_s=retention_s(ref.pickup_by or now.date(), now, rt.settings.retention.hold_days),
            fields=_listing_fields(payload, ref))
        if claim.verdict != ClaimVerdict.CLAIMED:
            return Result(Outcome.DUPLICATE, detail=claim.status)
    # the detail is an exception's text: keep it storable whatever it quotes
    why = why[:500].encode("utf-8", "backslashreplace").decode("utf-8")
    return await _phone(rt.store, ref, claim, reason, why)
