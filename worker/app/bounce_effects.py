"""What follows from one classified failure: record first, then act (Mailman's order).

Used for both ways a failure arrives: the relay's 5xx at send time and a bounce
mail ingested later. For a permanent failure:

1. a failure row for ``review failures`` (with advice for the patron);
2. bounce points for the address (see :mod:`worker.bounces.scoring`);
3. suspension of the address on the card — and on every other card sharing it
   (families share addresses), each change in that card's audit log;
4. for a bounce mail traced to a hold notice already marked sent: the hold goes
   to the call list, unless it was picked up, cancelled or its pickup window closed.

Steps 3 and 4 only for verified evidence (:mod:`worker.bounces.trust`): an unverified
bounce mail is recorded (marked so for staff) and scored, nothing more.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

from ..contact.addresses import normalise_address
from ..bounces.scoring import Verdict, judge
from ..store.bounces import BounceStore
from ..bounces import BounceResult
from ..bounces.trust import SEND_TIME, Trust
from ..contact import CallReason
from ..errors import AddressError
from ..bounces.failures import failure_record
from ..jdate import now_tokyo
from ..holds.calls import call_due, call_entry
from ..holds.policy import pickup_passed
from ..settings import Settings
from ..store.core import Store
from .sender_problems import raise_alert
from .suspension import suspend

log = logging.getLogger(__name__)


def address_key(address: str) -> str:
    """The address index's matching key (see :class:`worker.contact.addresses.Address`), also for
    what a bounce names (quoted, odd case, or no longer valid by today's rules)."""
    try:
        return normalise_address(address).key
    except AddressError:
        local, _, domain = address.rpartition("@")
        return f"{local.strip(chr(34))}@{domain.lower()}"


async def apply_failure(store: Store, settings: Settings, result: BounceResult, *,
                        card: str | None, hold_id: str | None, address: str, source: str,
                        diagnostic: str | None = None, hold: dict[str, str] | None = None,
                        trust: Trust = SEND_TIME, traced: str = "smtp",
                        what: str | None = None) -> dict[str, Any]:
    """Apply one failure for ``address`` (and ``card``/``hold_id`` when traced by
    ``traced``), as far as ``trust`` allows. ``what``: the kind of mail, on the failure
    rows, when not a hold notice ("confirmation mail", "reminder")."""
    bs = store.bounces
    key = address_key(address)
    cards = set(await store.contacts.cards_with(key))
    if card:
        cards.add(card)
    today = now_tokyo().date()
    await bs.count(result.reason)
    verdict = judge(result.reason, result.permanent, result.misconfigured_recipient, today,
                    await bs.scored_days(key), settings.bounces)
    if result.sender_problem:  # ours to fix: no step toward suspending the patron's address
        verdict = Verdict(0.0, verdict.score - verdict.points, False,
                          f"{result.reason}: our sender's fault, not the patron's (no points)")
    why = verdict.why if trust.may_suspend or not verdict.suspend else (
        f"{result.reason}: not suspended, {trust.evidence}")
    if verdict.points > 0:
        keep = timedelta(days=settings.bounces.stale_after_days + 1)
        await bs.add_points(key, today, verdict.points, int(keep.total_seconds()))
    sender = settings.mail.from_address
    recipients: list[str | None] = [*sorted(cards)] or [None]  # no card known: one record
    row: dict[str, Any] = {}
    for c in recipients:
        row = failure_record(
            c or "", hold_id if c == card else None, address, result, sender=sender,
            source=source, diagnostic=diagnostic, score=verdict.score,
            shared=(c != card), verified=trust.verified, traced=traced,
            evidence=trust.evidence, **({"what": what} if what else {}))
        await store.add_failure(row)
    if result.sender_problem and trust.verified:
        await raise_alert(store, row, sorted(cards))
    suspended = []
    if verdict.suspend and trust.may_suspend:
        for c in sorted(cards):
            if await suspend(store, c, reason=result.reason or "undefined",
                             detail=verdict.why, address_key=key):
                suspended.append(c)
    rephoned = None
    if hold_id and hold and result.permanent and trust.may_rephone:
        rephoned = await _rephone(bs, hold_id, hold, result.reason)
        # a digest (worker/app/digest.py): the bounce is every one of its holds'
        for other in (hold.get("digest_holds") or "").split(","):
            if other and other != hold_id:
                await _rephone(bs, other, await store.get_hold(other), result.reason)
    log.info("failure %s for %s cards %s: %s%s", result.reason, source, sorted(cards),
             why, f"; suspended {suspended}" if suspended else "")
    return {"cards": sorted(cards), "suspended": suspended, "score": verdict.score,
            "why": why, "hold": rephoned}


async def _rephone(bs: BounceStore, hold_id: str, hold: dict[str, str],
                   bounce_reason: str | None) -> str:
    ev = json.loads(hold.get("event") or "{}")
    pickup_by = date.fromisoformat(hold["pickup_by"]) if hold.get("pickup_by") else None
    now = now_tokyo()
    if pickup_by is None or pickup_passed(pickup_by, now):
        return "past pickup_by"
    call = call_entry(hold_id=hold_id, card_number=hold.get("card_number"),
                      pickup_branch=hold.get("pickup_branch"), pickup_by=pickup_by,
                      reason=CallReason.BOUNCED, title=ev.get("item", {}).get("title"),
                      added_at=now, detail="bounce mail after sending")
    return await bs.rephone(hold_id, call, call_due(pickup_by, now.date()), CallReason.BOUNCED,
                            bounce_reason or "undefined")
