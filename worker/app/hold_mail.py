"""Send and record the notice of holds one token owns: the send and record steps of a
hold notice, the same for a window of 0 and of 900 s.

The owner is a claim (``[digest] gather_s = 0``: one hold, worker/app/holds.py) or a
digest's take (worker/app/digest.py: the holds of one card at one branch that waited in
a window). Either way: one mail through the one send path (worker/app/send.py), then
every hold recorded by ``finish_hold.lua`` under the owner's token — one hold in one
round trip, several in one MULTI/EXEC — as mailed, listed (a 5xx; the address changed
meanwhile; the retry horizon ran out) or retrying. A mail of one hold is named by the
hold's notice token, a mail of several by the notice token of their set (both derived:
worker/mail/compose.py ``notice_token``, so the same holds re-sent after a 4xx or a loss
carry the same Message-ID; ``notice:TOKEN`` names the digest's first hold, and every hold
carries ``digest_holds``, so a bounce traced to one of them lists them all:
worker/app/bounce_effects.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Awaitable, Callable

from ..bounces.failures import failure_entry
from ..contact import CallReason, Contact, decide_contact
from ..holds.calls import call_due, call_entry
from ..holds.outcome import Outcome
from ..holds.policy import next_retry_delay_s, retry_horizon
from ..holds.retention import retention_s
from ..ils.events import HoldReady, HoldRef
from ..jdate import TOKYO, now_tokyo
from ..mail.verp import Sent
from ..masking import mask_address
from ..stats.fields import bounce_stats, carrier_bucket
from ..runtime import Runtime
from ..store.core import Store, now_ms
from ..store.vocab import ClaimVerdict, HoldStatus
from .reminders import schedule as schedule_reminders
from .sender_problems import record_failure
from .send import Delivered, send_mail

log = logging.getLogger(__name__)


@dataclass
class Followup:
    """What handling one message did besides its own hold (digests only): the results
    of the other holds of windows sent on the way (a mail's first hold counts ``sent``,
    the others ``gathered``)."""

    results: list[tuple[str, "Result"]] = field(default_factory=list)


@dataclass(frozen=True)
class Result:
    """What handling one hold's message came to (the actor turns it into an ack or a
    retry); ``followup``: what else it did (a digest's; None for a single notice)."""

    outcome: Outcome
    delay_ms: int = 0
    detail: str = ""
    followup: Followup | None = None


@dataclass(frozen=True)
class Member:
    """A hold to be mailed: its event (the first it was claimed with), its attempts so far,
    when its first claim was, and its notice token (the Message-ID of a mail of its own)."""

    ev: HoldReady
    attempts: int
    first_ms: int
    notice: str


# (hold_id, status, fields, call entry, due): the arguments of one finish_hold
Finish = tuple[str, str, dict[str, Any], dict[str, Any] | None, int]
# a digest's holds to try again: each member with its delay (s); the digest's own step
Regather = Callable[[list[tuple[Member, float]], str], Awaitable[dict[str, Result]]]


def listing(hold_id: str, reason: CallReason, *, card: str | None, branch: str | None,
            pickup_by: date | None, title: str | None, detail: str = "") -> Finish:
    """The finish of a hold that goes to the call list."""
    now = now_tokyo()
    call = call_entry(hold_id=hold_id, card_number=card, pickup_branch=branch,
                      pickup_by=pickup_by, reason=reason, title=title, added_at=now,
                      detail=detail)
    return (hold_id, HoldStatus.PHONED, {"reason": reason.value}, call,
            call_due(pickup_by, now.date()))


def listing_of(ev: HoldReady | HoldRef, reason: CallReason, detail: str = "") -> Finish:
    return listing(ev.hold_id, reason, card=ev.card_number, branch=ev.pickup_branch,
                   pickup_by=ev.pickup_by, detail=detail,
                   title=ev.item.title if isinstance(ev, HoldReady) else ev.title)


async def record(store: Store, token: str, card: str, finishes: list[Finish],
                 lease_ms: int = 0) -> dict[str, Result]:
    """Record each finish under ``token`` (one hold: one round trip); each hold's result.
    ``lease_ms``: the lease, when some are retrying."""
    if not finishes:
        return {}
    if len(finishes) == 1:
        hold_id, status, fields, call, due = finishes[0]
        statuses = [await store.finish_hold(hold_id, HoldStatus(status), token, card=card,
                                            fields=fields, call=call, due=due)]
    else:
        statuses = await store.digest.finish_all(finishes, token, card)
    out: dict[str, Result] = {}
    for (hold_id, outcome, fields, _, due), status in zip(finishes, statuses):
        if status == ClaimVerdict.LOST:
            # a mail relayed after all, later than the margin: worker/app/holds.py, window 3
            log.warning("hold %s: another worker took it over before its outcome (%s) was"
                        " recorded%s", hold_id, outcome,
                        f"; notice {fields.get('message_id')} was relayed, the patron may get"
                        " it twice" if outcome == HoldStatus.SENT else "")
            out[hold_id] = Result(Outcome.LOST)
        elif status == HoldStatus.SENT:
            out[hold_id] = Result(Outcome.SENT, detail=status)
        elif status == HoldStatus.PHONED:
            log.info("hold %s: on the phone-call list (%s)", hold_id, fields.get("reason"))
            out[hold_id] = Result(Outcome.PHONED, detail=fields.get("reason", ""))
        elif status == HoldStatus.RETRYING:
            # due is the sweeper's look: the retry itself comes two leases before
            out[hold_id] = Result(Outcome.RETRY, delay_ms=max(0, due - 2 * lease_ms - now_ms()),
                                  detail=fields.get("last_error", ""))
        else:
            log.info("hold %s: %s before its outcome was recorded", hold_id, status)
            out[hold_id] = Result(Outcome.CLOSED, detail=status)
    return out


async def mail_holds(rt: Runtime, card: str, token: str, members: list[Member], until: float,
                     *, envelope: str | None = None, contact: Contact | None = None,
                     listed: list[Finish] | None = None,
                     regather: Regather | None = None) -> dict[str, Result]:
    """Mail ``members`` (holds of ``card`` at one branch, owned by ``token``) as one mail
    and record them with ``listed`` (holds of the same owner going to the call list).
    ``envelope``: the address decided at the claim; None decides it now, from ``contact``
    (read with a digest's take) or the store. ``until``: the
    send's deadline (worker/app/send.py). ``regather``: how a digest's holds go round
    again after a transient failure (None: each retries on its own)."""
    finishes = list(listed or [])
    again: list[tuple[Member, float]] = []
    error = ""
    if members:
        mailed, again, error = await _mail(rt, card, token, members, until, envelope, contact)
        finishes += mailed
    if again and regather is None:
        finishes += [_retrying(m, delay, rt.settings.delivery.lease_s, error)
                     for m, delay in again]
        again = []
    results = await record(rt.store, token, card, finishes,
                           int(rt.settings.delivery.lease_s * 1000))
    if again:
        assert regather is not None
        results.update(await regather(again, error))
    if rt.settings.reminder.enabled:
        for m in members:
            if results.get(m.ev.hold_id, Result(Outcome.LOST)).outcome is Outcome.SENT:
                await schedule_reminders(rt, [m.ev.hold_id], m.ev.pickup_by)
    return results


async def _mail(rt: Runtime, card: str, token: str, members: list[Member], until: float,
                envelope: str | None, contact: Contact | None
                ) -> tuple[list[Finish], list[tuple[Member, float]], str]:
    """The finishes of the mail's holds; on a transient failure, those to try again
    (each with its delay, s) and the error."""
    if envelope is None:
        decision = decide_contact("email", contact or await rt.store.get_contact(card))
        if not decision.by_email:  # the address was suspended or removed meanwhile
            assert decision.reason is not None
            return [listing_of(m.ev, decision.reason) for m in members], [], ""
        envelope = decision.envelope
    assert envelope is not None
    ids = [m.ev.hold_id for m in members]
    events = [m.ev for m in members]
    name = members[0].notice if len(members) == 1 else ""
    if not name:  # several holds: a token of their set names the mail (a re-send, the same)
        name = await rt.store.notice_name(ids)
        await rt.store.digest.name_notice(name, ids[0], retention_s(
            events[0].pickup_by, now_tokyo(), rt.settings.retention.hold_days))

    async def lease(until_ms: int) -> bool:
        if len(ids) == 1:
            return await rt.store.extend_lease(ids[0], token, until_ms)
        return await rt.store.digest.extend_all(ids, token, until_ms)
    to = envelope
    d = await send_mail(rt, Sent("hold", card, to, ids[0]),
                        lambda t: rt.composer.hold_ready_digest(events, to, t),
                        until=until, lease=lease, token=name)
    if d.outcome is Delivered.SENT:
        now = now_tokyo()
        masked = mask_address(to)
        fields = {"message_id": d.message_id, "sent_ms": int(now.timestamp() * 1000),
                  "to": masked, "relay_reply": d.reply[:200],
                  "carrier": carrier_bucket(to)}  # for the statistics (worker/stats/)
        if len(ids) > 1:
            fields["digest_holds"] = ",".join(ids)
        # DEBUG, not INFO: the hold in Redis records the send and omitama_notices_total
        # counts it; a line per notice cost ~1/6 of the worker's CPU (README, "Performance")
        log.debug("notice %s: %d holds sent to %s", d.message_id, len(ids), masked)
        return [(h, HoldStatus.SENT, fields, None, 0) for h in ids], [], ""
    if d.outcome is Delivered.REFUSED:
        counted = bounce_stats(to, d.reason)  # carrier and reason, for the statistics
        return [(h, st, {**fields, **counted}, call, due) for h, st, fields, call, due in
                (listing_of(e, CallReason.BOUNCED, d.diagnostic) for e in events)], [], ""
    assert d.error is not None
    finishes: list[Finish] = []
    again: list[tuple[Member, float]] = []
    dl = rt.settings.delivery
    now = now_tokyo()
    for m in members:
        first = datetime.fromtimestamp(m.first_ms / 1000, TOKYO)
        delay = next_retry_delay_s(m.attempts, now, retry_horizon(first, m.ev.pickup_by, dl), dl)
        if delay is None:  # the horizon ran out: staff phone
            await record_failure(rt.store, failure_entry(
                card, m.ev.hold_id, to, d.error, rt.settings.mail.from_address), card)
            finishes.append(listing_of(m.ev, CallReason.DELIVERY_FAILED, str(d.error)))
        else:
            again.append((m, delay))
    log.warning("notice of %d holds (attempt %d): %s; %d to try again", len(ids),
                max(m.attempts for m in members), d.error, len(again))
    return finishes, again, str(d.error)


def _retrying(m: Member, delay: float, lease_s: float, error: str) -> Finish:
    retry_ms = int((now_tokyo().timestamp() + delay) * 1000)
    # the sweeper looks again if the retry has not come two leases after it was due; a
    # claim before retry_ms (the event announced again) waits for it (claim_hold.lua)
    look_again = retry_ms + int(2 * lease_s * 1000)
    return (m.ev.hold_id, HoldStatus.RETRYING, {"last_error": error, "retry_ms": str(retry_ms)},
            None, look_again)
