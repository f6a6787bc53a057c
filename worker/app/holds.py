"""Hold notices: claim → decide → send → record, once per hold (:func:`notify_hold_ready`).

1. **Claim** (``claim_hold.lua``): one worker at a time owns a hold (a lease of
   ``[delivery] lease_s``); a hold that reached an outcome (sent, phoned, cancelled,
   picked up) is never claimed again, whatever the redeliveries and duplicates.
2. **Decide**: pickup day passed, or the patron's contact says phone → the call list.
3. **Send**: one mail through the one send path (worker/app/send.py) — now, or at the
   end of the card's digest window at the branch (``[digest] gather_s``,
   worker/app/digest.py); a window of 0 is a digest of one sent now.
4. **Record**: worker/app/hold_mail.py, the same for both.

One hold, one event. The event a hold is first claimed with decides everything about
it: whom the notice goes to, what it says, which window it waits in, the card the
outcome stream names. A later ``hold_ready`` for the same hold is a duplicate whatever
it says (as when the first was already mailed); when it names another card or pickup
branch it is also kept in ``review rejected`` (kind ``conflicting_event``) for the ILS
team. So a hold belongs to exactly one window, and a mail carries only the data of the
card it is addressed to, with or without a window.

Fencing. Every claim (the first, a retry, the takeover of a lease whose worker died
or stalled) gets a token of its own, and ``finish_hold.lua`` records an outcome only
for the hold's latest token: a worker whose lease was taken over is told "lost",
writes nothing and reports nothing (``Outcome.LOST``), so a hold is never counted as
mailed twice, nor listed after it was mailed. Fencing cannot recall a mail, so the
send is bounded as well (worker/app/send.py): it must be over within ``SEND_SHARE`` of the lease after the
claim, the rest of the lease being for recording the outcome and for clocks that
differ between hosts. Waiting for a pooled connection, connecting and MAIL/RCPT/DATA
are cut at that deadline; the message itself goes out only while a whole
``[smtp] timeout`` is left for the relay's reply — if not, the lease is first
extended by that much (``extend_lease.lua``, one Redis round trip, only on this slow
path; refused if the hold was taken over) — and is not cut after that (see
worker/mail/transport.py). A send cut short never reached the relay — its connection is
reset, so not even the bytes still queued on this host arrive later (a host cut off the
network mid-message: tests/test_partition.py) — it is a transient failure, retried like
any other. So a slow relay or a long wait for a connection
costs time (and, if it never fits the lease, ends on the call list), not a second mail.

The remaining duplicate window. The patron may still get the notice twice — with the
*same* Message-ID (the hold's notice token, derived from its id: the same for every
claim, even one after a failover lost the hold's record and the ILS announced it
again), which many mail apps fold into one — when:

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

import json
import logging
from typing import Any

from ..contact import CallReason, Contact, decide_contact
from ..errors import EventError
from ..holds.calls import passed_reason
from ..holds.outcome import Outcome
from ..holds.policy import pickup_passed
from ..holds.retention import retention_s
from ..ils.events import MAX_EVENT_BYTES, HoldReady, HoldRef, hold_ref, json_text, parse_event
from ..jdate import now_tokyo
from ..mail.compose import new_token
from ..runtime import Runtime
from ..settings import Settings
from ..store.core import Claim, Store
from ..store.vocab import OPEN_STATUSES, ClaimVerdict, HoldStatus
from .digest import gather, join_asked
from .hold_mail import Member, Result, listing_of, mail_holds, record
from .refusals import RefusalKind, keep_refusal
from .send import deadline

log = logging.getLogger(__name__)


async def _list(store: Store, ev: HoldReady | HoldRef, claim: Claim, reason: CallReason,
                detail: str = "") -> Result:
    """The claimed hold goes to the call list (the record step, for a hold not mailed)."""
    return (await record(store, claim.token, ev.card_number,
                         [listing_of(ev, reason, detail)]))[ev.hold_id]


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
    return await _list(store, ref, claim, CallReason.INVALID_EVENT, error[:500])


async def notify_hold_ready(rt: Runtime, ev: HoldReady) -> Result:
    """Claim → decide → send → record, once per hold (see the module's docstring)."""
    d = rt.settings.delivery
    now = now_tokyo()
    until = deadline(rt)  # the send must be over well before the lease (starting now) ends
    # 1. claim
    claim = await rt.store.claim_hold(
        ev.hold_id, token=new_token(), lease_ms=int(d.lease_s * 1000),
        ttl_s=retention_s(ev.pickup_by, now, rt.settings.retention.hold_days),
        fields={"event": ev.model_dump_json(), "card_number": ev.card_number,
                "pickup_branch": ev.pickup_branch, "pickup_by": ev.pickup_by.isoformat()},
        contact_of=ev.card_number,  # the contact comes in the same round trip
        join=join_asked(rt, ev))  # and, with a window on, the join (worker/app/digest.py)
    if claim.verdict == ClaimVerdict.DONE:
        log.info("hold %s: already %s; duplicate ignored", ev.hold_id, claim.status)
        if claim.first_event:  # the ILS said something else first: staff see what
            await _first_event(rt, ev, claim)
        return Result(Outcome.DUPLICATE, detail=claim.status)
    if claim.verdict == ClaimVerdict.BUSY:
        return Result(Outcome.BUSY, delay_ms=claim.busy_ms + 1000)
    contact = claim.contact
    if claim.first_event:  # the hold was claimed before with another event: that one decides
        ev, contact = await _first_event(rt, ev, claim)

    # 2. decide
    if pickup_passed(ev.pickup_by, now):
        return await _list(rt.store, ev, claim, passed_reason(
            ev.pickup_by, claim.first_ms, "retrying"))
    decision = decide_contact(ev.contact, contact or await rt.store.get_contact(ev.card_number))
    if not decision.by_email:
        assert decision.reason is not None
        return await _list(rt.store, ev, claim, decision.reason)

    # 3. send and 4. record: in a window (its end sends), or now — a digest of one
    if rt.settings.digest.gather_s > 0:
        return await gather(rt, ev, claim)
    member = Member(ev, claim.attempts, claim.first_ms, claim.notice)
    return (await mail_holds(rt, ev.card_number, claim.token, [member], until,
                             envelope=decision.envelope))[ev.hold_id]


async def _first_event(rt: Runtime, ev: HoldReady, claim: Claim
                       ) -> tuple[HoldReady, Contact | None]:
    """The event the hold was first claimed with, which decides everything the notice
    says and whom it goes to; one naming another card or branch than ``ev`` leaves ``ev``
    in ``review rejected`` (kind conflicting_event) for the ILS team. The contact read
    with the claim is kept when it is the first event's card's."""
    try:
        first = parse_event(json.loads(claim.first_event), rt.branches)
    except (EventError, ValueError):  # kept by a claim from a refused payload: ours decides
        return ev, claim.contact
    if not isinstance(first, HoldReady):
        return ev, claim.contact
    if (first.card_number, first.pickup_branch) != (ev.card_number, ev.pickup_branch):
        await keep_refusal(rt.store, ev.model_dump(mode="json"),
                           f"hold {ev.hold_id} was first announced for card"
                           f" {first.card_number} at {first.pickup_branch}; this event (card"
                           f" {ev.card_number} at {ev.pickup_branch}) is not used: the first"
                           " event of a hold decides",
                           event_id=ev.event_id, event_type=ev.type,
                           kind=RefusalKind.CONFLICTING_EVENT)
    return first, claim.contact if first.card_number == ev.card_number else None


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
    return await _list(rt.store, ref, claim, reason, why)
