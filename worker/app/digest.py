"""Digest windows: a card's holds ready at one pickup branch within ``[digest] gather_s``
go out as one mail (issue 13, item 1). ``gather_s = 0`` keeps one mail per hold: the
same send and record steps (worker/app/hold_mail.py) with the claim as the owner.

Why a window at all: staff trap the day's holds in runs of a few minutes, three times
a day, so a family's holds at one branch become ready minutes apart; five mails (and
five calls) for one household is what patrons complained of.

How, on top of the claim/fence machinery of worker/app/holds.py (read its docstring):

1. An e-mail hold is claimed and decided as always, then *joins* the open window of its
   card at its branch (``gather_join.lua``), or opens one ending ``gather_s`` from now.
   The card and branch are those of the event the hold was first claimed with (one
   hold, one event: a later event naming another card or branch changes neither), so a
   hold belongs to exactly one window. It waits as ``retrying`` — not on the call list,
   not mailed — and its own message comes back at the window's end (a dramatiq retry
   with that delay: durable in Redis, so a restart mid-window changes nothing). The
   sweeper re-sends its event if that message is lost (``inflight``: the window's end
   plus two leases).
2. The first message of a member to come back after the end (any member's: they race)
   *takes* the window (``gather_take.lua``): the window is closed and every member still
   waiting in it — not cancelled, picked up or listed meanwhile — gets the digest's own
   token and lease. A member's other claims are fenced out: such a message comes back
   after the digest's lease (BUSY), so every hold keeps a message of its own; a hold that
   arrives after the end opens the next window (the window that is due is sent first).
3. One mail for the holds taken (one hold: exactly the notice of ``gather_s = 0``), then
   every hold recorded (worker/app/hold_mail.py): mailed, listed (a 5xx; the address
   changed meanwhile) — or, after a transient failure, every hold still within its retry
   horizon joins a window of its card and branch again, ending at the retry's delay (or
   the open one, if newer holds started one): its message comes back then, and the next
   attempt is again one mail for what still belongs together.
"""

from __future__ import annotations

import json
import logging
from datetime import date

from ..contact import CallReason
from ..errors import EventError
from ..holds.calls import passed_reason
from ..holds.outcome import Outcome
from ..holds.policy import pickup_passed
from ..ils.events import HoldReady, parse_event
from ..jdate import now_tokyo
from ..mail.compose import new_token
from ..runtime import Runtime
from ..store.core import Claim
from ..store.vocab import GatherVerdict
from .hold_mail import Finish, Member, Result, listing, listing_of, mail_holds
from .send import deadline

log = logging.getLogger(__name__)


async def gather(rt: Runtime, ev: HoldReady, claim: Claim) -> Result:
    """A claimed hold to be mailed: wait in its window, or send the window that is due."""
    ds = rt.store.digest
    lease_ms = int(rt.settings.delivery.lease_s * 1000)
    window_ms = int(rt.settings.digest.gather_s * 1000)
    for _ in range(5):  # a window taken by another worker meanwhile: look again
        j = await ds.join(ev.hold_id, claim.token, ev.card_number, ev.pickup_branch,
                          window_ms=window_ms, lease_ms=lease_ms, new_id=new_token())
        if j.verdict == GatherVerdict.LOST:
            # fenced out: a digest took the hold (or another message claimed it); come
            # back when that lease is over, so the hold keeps a message of its own
            return Result(Outcome.BUSY, delay_ms=lease_ms + 1000)
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
    ds = rt.store.digest
    token = new_token()
    until = deadline(rt)
    taken = await ds.take(card, branch, gather_id, token, int(d.lease_s * 1000))
    if not taken:
        return None if taken is None else {}
    members: list[Member] = []
    listed: list[Finish] = []
    now = now_tokyo()
    for hold_id, h in zip(taken, await rt.store.get_holds(taken)):
        try:
            ev = parse_event(json.loads(h.get("event") or "{}"), rt.branches)
        except (EventError, ValueError):  # stored by the claim from a valid event: damage
            ev = None
        if not isinstance(ev, HoldReady):
            listed.append(listing(hold_id, CallReason.WORKER_ERROR, card=h.get("card_number"),
                                  branch=h.get("pickup_branch"), pickup_by=_day(h),
                                  title=None, detail="stored event unreadable"))
        elif pickup_passed(ev.pickup_by, now):
            listed.append(listing_of(ev, passed_reason(
                ev.pickup_by, int(h.get("first_ms") or 0),
                # a hold claimed again after its digest failed is being retried
                "retrying" if int(h.get("attempts") or 1) > 1 else "gathering")))
        else:
            members.append(Member(ev, int(h.get("attempts") or 1),
                                  int(h.get("first_ms") or now.timestamp() * 1000),
                                  h.get("notice") or ""))

    async def regather(again: list[tuple[Member, float]], error: str) -> dict[str, Result]:
        """After a transient failure: the holds wait in a window again, until the retry."""
        out: dict[str, Result] = {}
        new_id = new_token()
        for m, delay in again:
            j = await ds.join(m.ev.hold_id, token, card, branch, window_ms=int(delay * 1000),
                              lease_ms=int(d.lease_s * 1000), new_id=new_id)
            if j.verdict == GatherVerdict.WAIT:
                out[m.ev.hold_id] = Result(Outcome.RETRY, delay_ms=j.wait_ms, detail=error)
            elif j.verdict == GatherVerdict.DUE:  # a newer window is due already: join it
                out[m.ev.hold_id] = Result(Outcome.RETRY, delay_ms=0, detail=error)
            else:
                out[m.ev.hold_id] = Result(Outcome.LOST)
        log.warning("digest of %d holds: %s; tried again together", len(again), error)
        return out
    return await mail_holds(rt, card, token, members, until, listed=listed, regather=regather)


def _day(h: dict[str, str]) -> date | None:
    try:
        return date.fromisoformat(h.get("pickup_by") or "")
    except ValueError:
        return None
