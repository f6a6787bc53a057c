"""Digest mail: a card's holds ready at one pickup branch within ``[digest] gather_s``
go out as one mail (issue 13, item 1). ``gather_s = 0`` keeps one mail per hold.

Why a window at all: staff trap the day's holds in runs of a few minutes, three times
a day, so a family's holds at one branch become ready minutes apart; five mails (and
five calls) for one household is what patrons complained of.

How, on top of the claim/fence machinery of worker/app/holds.py (read its docstring):

1. An e-mail hold is claimed and decided as always, then *joins* the open window of its
   card at its branch (``gather_join.lua``), or opens one ending ``gather_s`` from now.
   It waits as ``retrying`` — not on the call list, not mailed — and its own message
   comes back at the window's end (a dramatiq retry with that delay: durable in Redis,
   so a restart mid-window changes nothing). The sweeper re-sends its event if that
   message is lost (``inflight``: the window's end plus two leases).
2. The first message of a member to come back after the end (any member's: they race)
   *takes* the window (``gather_take.lua``): the window is closed and every member still
   waiting in it — not cancelled, picked up or listed meanwhile — gets the digest's own
   token and lease. A member's other claims are fenced out, so no hold can be in two
   mails; a hold that arrives after the end opens the next window (the window that is
   due is sent first).
3. One mail for the holds taken (one hold: exactly today's notice), then every hold is
   recorded in one MULTI/EXEC of ``finish_hold.lua`` (each with its outcome): all
   mailed, all listed (a 5xx; the address changed meanwhile), or all retrying (each
   then goes round again on its own message, into a new window).

The digest's Message-ID is ``<hold.TOKEN@…>`` like a single notice's; ``notice:TOKEN``
names its first hold and every hold carries ``digest_holds``, so a bounce traced to any
of them (Message-ID or VERP token) puts all of them on the call list
(:func:`worker.app.bounce_effects.apply_failure`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, datetime
from typing import Any

from ..bounces.failures import failure_entry, smtp_result
from ..contact import CallReason, decide_contact
from ..errors import EventError, PermanentDeliveryError, TransientDeliveryError
from ..holds.calls import call_due, call_entry
from ..holds.outcome import Outcome
from ..holds.policy import next_retry_delay_s, pickup_passed, retry_horizon
from ..ils.events import HoldReady, parse_event
from ..jdate import TOKYO, now_tokyo
from ..mail.compose import new_token
from ..mail.verp import Sent
from ..masking import mask_address
from ..stats.fields import bounce_stats, carrier_bucket
from ..runtime import Runtime
from ..store.core import Claim, now_ms
from ..store.digest import DigestStore
from ..store.vocab import ClaimVerdict, GatherVerdict, HoldStatus
from ..store.verp import stamp_return_path
from .bounce_effects import apply_failure
from .holds import SEND_SHARE, Result
from .reminders import schedule as schedule_reminder

log = logging.getLogger(__name__)


# (hold_id, outcome, fields, call entry, due) — the arguments of one finish_hold
Finish = tuple[str, str, dict[str, Any], dict[str, Any] | None, int]


async def gather(rt: Runtime, ev: HoldReady, claim: Claim) -> Result:
    """A claimed hold to be mailed: wait in its window, or send the window that is due."""
    ds = DigestStore(rt.store)
    lease_ms = int(rt.settings.delivery.lease_s * 1000)
    window_ms = int(rt.settings.digest.gather_s * 1000)
    for _ in range(5):  # a window taken by another worker meanwhile: look again
        j = await ds.join(ev.hold_id, claim.token, ev.card_number, ev.pickup_branch,
                          window_ms=window_ms, lease_ms=lease_ms, new_id=new_token())
        if j.verdict == GatherVerdict.LOST:
            return Result(Outcome.LOST)
        if j.verdict == GatherVerdict.WAIT:
            return Result(Outcome.GATHERING, delay_ms=j.wait_ms, detail=j.gather_id)
        sent = await send_window(rt, ev.card_number, ev.pickup_branch, j.gather_id)
        if sent is not None and ev.hold_id in sent:
            return sent[ev.hold_id]
    return Result(Outcome.BUSY, delay_ms=1000)


async def send_window(rt: Runtime, card: str, branch: str,
                      gather_id: str) -> dict[str, Result] | None:
    """Take window ``gather_id`` and mail its holds; each taken hold's result, or None
    when another worker took the window first."""
    d = rt.settings.delivery
    ds = DigestStore(rt.store)
    token = new_token()
    deadline = asyncio.get_running_loop().time() + SEND_SHARE * d.lease_s
    taken = await ds.take(card, branch, gather_id, token, int(d.lease_s * 1000))
    if not taken:
        return None if taken is None else {}
    rows = await ds.holds(taken)
    events: list[HoldReady] = []
    listed: list[Finish] = []
    now = now_tokyo()
    for hold_id, h in zip(taken, rows):
        try:
            ev = parse_event(json.loads(h.get("event") or "{}"), rt.branches)
        except (EventError, ValueError):  # stored by the claim from a valid event: damage
            listed.append(_listing(hold_id, h, None, CallReason.WORKER_ERROR, "stored event unreadable"))
            continue
        if not isinstance(ev, HoldReady):
            listed.append(_listing(hold_id, h, None, CallReason.WORKER_ERROR, "stored event unreadable"))
        elif pickup_passed(ev.pickup_by, now):
            listed.append(_listing(hold_id, h, ev, CallReason.PICKUP_PASSED))
        else:
            events.append(ev)
    results = await _mail(rt, ds, card, events, token, deadline) if events else []
    recorded = await _record(ds, token, card, listed + results, int(d.lease_s * 1000))
    for ev in events:
        if recorded[ev.hold_id].outcome is Outcome.SENT:
            await schedule_reminder(rt, [ev.hold_id], ev.pickup_by)
    return recorded


async def _mail(rt: Runtime, ds: DigestStore, card: str, events: list[HoldReady], token: str,
                deadline: float) -> list[Finish]:
    decision = decide_contact("email", await rt.store.get_contact(card))
    if not decision.by_email:  # the address was suspended or removed during the window
        assert decision.reason is not None
        return [_listing(e.hold_id, {}, e, decision.reason) for e in events]
    assert decision.envelope is not None
    ids = [e.hold_id for e in events]
    ttl = int(await rt.store.r.ttl(rt.store.k.hold(ids[0])))
    await rt.store.r.set(rt.store.k.notice(token), ids[0], ex=max(ttl, 86400))
    notice = await stamp_return_path(
        rt.store, rt.settings, rt.composer.hold_ready_digest(events, decision.envelope, token),
        Sent("hold", card, decision.envelope, ids[0]))
    d = rt.settings.delivery

    async def extend(seconds: float) -> bool:
        until = now_ms() + int((seconds + (1 - SEND_SHARE) * d.lease_s) * 1000)
        return await ds.extend_all(ids, token, until)
    siblings = ",".join(ids)
    try:
        reply = await rt.transport.send(notice, deadline, extend)
    except PermanentDeliveryError as e:
        result = smtp_result(e, decision.envelope)
        assert result is not None
        await apply_failure(rt.store, rt.settings, result, card=card, hold_id=ids[0],
                            address=decision.envelope, source="smtp",
                            diagnostic=f"{e.code} {e.text}")
        return [_listing(ev.hold_id, {}, ev, CallReason.BOUNCED, f"{e.code} {e.text}",
                         bounce_stats(decision.envelope, result.reason)) for ev in events]
    except TransientDeliveryError as e:
        return await _retrying(rt, ds, card, events, decision.envelope, e)
    now = now_tokyo()
    fields = {"message_id": notice.message_id, "sent_ms": int(now.timestamp() * 1000),
              "to": mask_address(decision.envelope), "relay_reply": reply[:200],
              "digest_holds": siblings,
              "carrier": carrier_bucket(decision.envelope)}  # for the statistics
    log.debug("digest %s: %d holds sent to %s", notice.message_id, len(ids),
              mask_address(decision.envelope))
    return [(ev.hold_id, HoldStatus.SENT, fields, None, 0) for ev in events]


async def _retrying(rt: Runtime, ds: DigestStore, card: str, events: list[HoldReady],
                    envelope: str, e: TransientDeliveryError) -> list[Finish]:
    d = rt.settings.delivery
    now = now_tokyo()
    out: list[Finish] = []
    for ev, h in zip(events, await ds.holds([ev.hold_id for ev in events])):
        first = datetime.fromtimestamp(int(h.get("first_ms") or now_ms()) / 1000, TOKYO)
        delay = next_retry_delay_s(int(h.get("attempts") or 1), now,
                                   retry_horizon(first, ev.pickup_by, d), d)
        if delay is None:
            await rt.store.add_failure(failure_entry(card, ev.hold_id, envelope, e,
                                                     rt.settings.mail.from_address))
            out.append(_listing(ev.hold_id, {}, ev, CallReason.DELIVERY_FAILED, str(e)))
        else:
            look_again = int((now.timestamp() + delay + 2 * d.lease_s) * 1000)
            out.append((ev.hold_id, HoldStatus.RETRYING, {"last_error": str(e)}, None,
                        look_again))
    log.warning("digest of %d holds: %s; each is retried", len(events), e)
    return out


def _listing(hold_id: str, h: dict[str, str], ev: HoldReady | None, reason: CallReason,
             detail: str = "", stats: dict[str, str] | None = None) -> Finish:
    """The finish of a hold of the window that goes to the call list instead."""
    stored = h.get("pickup_by") or ""
    pickup_by = ev.pickup_by if ev else (date.fromisoformat(stored) if stored else None)
    now = now_tokyo()
    call = call_entry(hold_id=hold_id, card_number=ev.card_number if ev else h.get("card_number"),
                      pickup_branch=ev.pickup_branch if ev else h.get("pickup_branch"),
                      pickup_by=pickup_by, reason=reason, title=ev.item.title if ev else None,
                      added_at=now, detail=detail)
    return (hold_id, HoldStatus.PHONED, {"reason": reason.value, **(stats or {})}, call,
            call_due(pickup_by, now.date()))


async def _record(ds: DigestStore, token: str, card: str, finishes: list[Finish],
                  lease_ms: int) -> dict[str, Result]:
    statuses = await ds.finish_all(finishes, token, card)
    out: dict[str, Result] = {}
    for (hold_id, outcome, fields, _, due), status in zip(finishes, statuses):
        if status == ClaimVerdict.LOST:
            log.warning("hold %s: another worker took it over before its digest was recorded",
                        hold_id)
            out[hold_id] = Result(Outcome.LOST)
        elif status == HoldStatus.SENT:
            out[hold_id] = Result(Outcome.SENT, detail=status)
        elif status == HoldStatus.PHONED:
            out[hold_id] = Result(Outcome.PHONED, detail=fields.get("reason", ""))
        elif status == HoldStatus.RETRYING:
            # due is the sweeper's look: the retry itself comes two leases before
            out[hold_id] = Result(Outcome.RETRY, delay_ms=max(0, due - 2 * lease_ms - now_ms()),
                                  detail=fields.get("last_error", ""))
        else:
            out[hold_id] = Result(Outcome.CLOSED, detail=status)
    return out
