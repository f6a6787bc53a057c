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

A reminder goes through the one send path (worker/app/send.py) and is traced like a
notice: its Message-ID ``<remind.TOKEN@…>`` and its VERP return path carry a token
remembered with the card and address, so a bounce of it suspends the address as a
notice's does (the holds stay as they are: their notice was mailed).
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time, timedelta
from typing import Any

from ..contact import decide_contact
from ..errors import EventError
from ..ils.events import HoldReady, parse_event
from ..jdate import TOKYO
from ..mail.compose import new_token
from ..mail.verp import Sent
from ..masking import mask_address
from ..runtime import Runtime
from ..store.reminders import ReminderStore
from .send import Delivered, deadline, send_mail

log = logging.getLogger(__name__)


def reminder_at(pickup_by: date, days_before: int, hour: int) -> datetime:
    """The moment (JST) the reminder of a hold whose last day is ``pickup_by`` is due."""
    return datetime.combine(pickup_by - timedelta(days=days_before), time(hour), TOKYO)


def may_remind(pickup_by: date, at: datetime) -> bool:
    """Never after the last day: a reminder at ``at`` is still useful on ``pickup_by``."""
    return at.astimezone(TOKYO).date() <= pickup_by


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
    for hold_id, h in zip(ids, await rt.store.get_holds(ids)):
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
    to = decision.envelope
    # no lease to extend: a reminder is taken (remind_take.lua), and a late reply
    # changes nothing but the take's end; the send path traces it like a notice
    d = await send_mail(rt, Sent("reminder", card, to),
                        lambda name: rt.composer.reminder(events, to, name), until=deadline(rt))
    if d.outcome is Delivered.REFUSED:  # the address scored it; the holds stay as they are
        await rs.drop(ids)
        return False
    if d.outcome is Delivered.TRANSIENT:
        log.warning("reminder for %d holds of a card: %s; tried again next pass", len(ids),
                    d.error)
        return False
    await rs.done(ids, token, d.message_id)
    log.info("reminder %s: %d holds, to %s", d.message_id, len(ids), mask_address(to))
    return True
