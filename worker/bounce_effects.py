"""What follows from one classified failure: record first, then act (Mailman's order).

Used for both ways a failure arrives: the relay's 5xx at send time and a bounce
mail ingested later. For a permanent failure:

1. a failure row for ``review failures`` (with advice for the patron);
2. bounce points for the address (see :mod:`worker.bounce_policy`);
3. suspension of the address on the card — and on every other card sharing it
   (families share addresses), each change in that card's audit log;
4. for a bounce mail traced to a hold notice already marked sent: the hold goes
   to the call list, unless it was picked up, cancelled or its pickup window closed.
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import Any

from .addresses import normalise_address
from .bounce_policy import judge
from .bounce_store import BounceStore
from .bounces import BounceResult
from .contact import CALL_REASON_JA, CallReason
from .errors import AddressError
from .failures import failure_record
from .jdate import now_tokyo
from .policy import pickup_passed
from .registry import Registry
from .settings import Settings
from .store import Store
from .suspension import suspend

log = logging.getLogger(__name__)


def address_key(address: str) -> str:
    """The address index's matching key (see :class:`worker.addresses.Address`), also for
    what a bounce names (quoted, odd case, or no longer valid by today's rules)."""
    try:
        return normalise_address(address).key
    except AddressError:
        local, _, domain = address.rpartition("@")
        return f"{local.strip(chr(34))}@{domain.lower()}"


async def apply_failure(store: Store, settings: Settings, result: BounceResult, *,
                        card: str | None, hold_id: str | None, address: str, source: str,
                        diagnostic: str | None = None, hold: dict[str, str] | None = None
                        ) -> dict[str, Any]:
    """Apply one failure for ``address`` (and ``card``/``hold_id`` when traced)."""
    bs = BounceStore(store)
    key = address_key(address)
    cards = set(await Registry(store).cards_with(key))
    if card:
        cards.add(card)
    today = now_tokyo().date()
    await bs.count(result.reason)
    verdict = judge(result.reason, result.permanent, result.misconfigured_recipient, today,
                    await bs.scored_days(key), settings.bounces)
    if verdict.points:
        keep = timedelta(days=settings.bounces.stale_after_days + 1)
        await bs.add_points(key, today, verdict.points, int(keep.total_seconds()))
    sender = settings.mail.from_address
    recipients: list[str | None] = [*sorted(cards)] or [None]  # no card known: one record
    for c in recipients:
        await store.add_failure(failure_record(
            c or "", hold_id if c == card else None, address, result, sender=sender,
            source=source, diagnostic=diagnostic, score=verdict.score,
            shared=(c != card)))
    suspended = []
    if verdict.suspend:
        for c in sorted(cards):
            if await suspend(store, c, reason=result.reason or "undefined",
                             detail=verdict.why, address_key=key):
                suspended.append(c)
    rephoned = None
    if hold_id and hold and result.permanent:
        rephoned = await _rephone(bs, hold_id, hold)
    log.info("failure %s for %s cards %s: %s%s", result.reason, source, sorted(cards),
             verdict.why, f"; suspended {suspended}" if suspended else "")
    return {"cards": sorted(cards), "suspended": suspended, "score": verdict.score,
            "why": verdict.why, "hold": rephoned}


async def _rephone(bs: BounceStore, hold_id: str, hold: dict[str, str]) -> str:
    ev = json.loads(hold.get("event") or "{}")
    pickup_by = date.fromisoformat(hold["pickup_by"]) if hold.get("pickup_by") else None
    if pickup_by is None or pickup_passed(pickup_by, now_tokyo()):
        return "past pickup_by"
    call = {"hold_id": hold_id, "card_number": hold.get("card_number"),
            "pickup_branch": hold.get("pickup_branch"), "pickup_by": hold.get("pickup_by"),
            "reason": CallReason.BOUNCED.value, "reason_ja": CALL_REASON_JA[CallReason.BOUNCED],
            "title": ev.get("item", {}).get("title"),
            "added_at": now_tokyo().isoformat(timespec="seconds"),
            "detail": "bounce mail after sending"}
    return await bs.rephone(hold_id, call, int(pickup_by.strftime("%Y%m%d")),
                            CallReason.BOUNCED.value)
