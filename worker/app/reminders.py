"""Pickup reminders (issue 13, item 3): 「お取り置き期限が近づいています」.

``[reminder] enabled`` (off by default), ``days_before`` (1) and ``hour`` (10, JST). A
hold that was **mailed** is scheduled when its notice is recorded (the zset
``reminders``, score = the reminder's moment). A pass — the worker runs one a minute,
``omitama-notify reminders run [--at ISO]`` runs one by hand as if it were that time —
takes the holds that are due, still ``sent`` (not listed after a bounce, not cancelled,
not picked up) and never reminded (``remind_take.lua``), groups them per card and
pickup branch as the digest does, and sends one mail per group; ``remind_done.lua``
records each hold and its ``reminded`` outcome in one step. Never twice (the take);
never after ``pickup_by`` (such holds are dropped); a hold whose notice went by phone
is never scheduled. A transient failure leaves the holds scheduled for the next pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import date, datetime
from typing import Any

from ..contact import decide_contact
from ..errors import EventError, PermanentDeliveryError, TransientDeliveryError
from ..bounces.failures import smtp_result
from ..holds.reminders import may_remind, reminder_at
from ..ils.events import HoldReady, parse_event
from ..mail.compose import new_token
from ..masking import mask_address
from ..runtime import Runtime
from ..store.reminders import ReminderStore
from .bounce_effects import apply_failure

log = logging.getLogger(__name__)


async def schedule(rt: Runtime, hold_ids: list[str], pickup_by: date) -> None:
    """A mailed hold gets its reminder (when reminders are on)."""
    r = rt.settings.reminder
    if r.enabled and hold_ids:
        at = reminder_at(pickup_by, r.days_before, r.hour)
        await rt.store.reminders.schedule(hold_ids, int(at.timestamp() * 1000))


async def run_pass(rt: Runtime, at: datetime) -> dict[str, Any]:
    """One pass as if it were ``at``: what was due, mailed, dropped."""
    rs = rt.store.reminders
    ids = await rs.due(int(at.timestamp() * 1000))
    groups: dict[tuple[str, str], list[HoldReady]] = {}
    late = []
    for hold_id, h in zip(ids, await rs.holds(ids)):
        try:
            ev = parse_event(json.loads(h.get("event") or "{}"), rt.branches)
        except (EventError, ValueError):
            late.append(hold_id)
            continue
        if not isinstance(ev, HoldReady) or not may_remind(ev.pickup_by, at):
            late.append(hold_id)
            continue
        groups.setdefault((ev.card_number, ev.pickup_branch), []).append(ev)
    await rs.drop(late)
    mails = holds = 0
    lease_ms = int(rt.settings.delivery.lease_s * 1000)
    for (card, _), events in groups.items():
        token = new_token()
        taken = set(await rs.take([e.hold_id for e in events], token, lease_ms))
        chosen = [e for e in events if e.hold_id in taken]
        if chosen and await _send(rt, rs, card, chosen, token):
            mails += 1
            holds += len(chosen)
    return {"due": len(ids), "mails": mails, "holds": holds, "dropped_late": len(late)}


async def _send(rt: Runtime, rs: ReminderStore, card: str, events: list[HoldReady],
                token: str) -> bool:
    ids = [e.hold_id for e in events]
    decision = decide_contact("email", await rt.store.get_contact(card))
    if not decision.by_email or decision.envelope is None:
        await rs.drop(ids)  # the address was suspended or removed since: no reminder
        return False
    notice = rt.composer.reminder(events, decision.envelope, token)
    deadline = asyncio.get_running_loop().time() + 0.8 * rt.settings.delivery.lease_s

    async def extend(seconds: float) -> bool:
        return True  # a reminder is taken, not leased: a late reply changes nothing
    try:
        await rt.transport.send(notice, deadline, extend)
    except PermanentDeliveryError as e:
        result = smtp_result(e, decision.envelope)
        if result is not None:  # the address scores the bounce; the holds stay as they are
            await apply_failure(rt.store, rt.settings, result, card=card, hold_id=None,
                                address=decision.envelope, source="smtp",
                                diagnostic=f"{e.code} {e.text}")
        await rs.drop(ids)
        return False
    except TransientDeliveryError as e:
        log.warning("reminder for %d holds of a card: %s; tried again next pass", len(ids), e)
        return False
    await rs.done(ids, token, notice.message_id)
    log.info("reminder %s: %d holds, to %s", notice.message_id, len(ids),
             mask_address(decision.envelope))
    return True
