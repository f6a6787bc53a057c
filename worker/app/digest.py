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
   not mailed — and its own message is done. A window opened is entered in
   ``gather_due`` (scored by its end) by the same script; every worker process polls it
   (worker/queue/windows.py) and the first to find a window due sends it: durable in
   Redis, so a restart mid-window changes nothing. No message per window: scheduling one
   through dramatiq's delay queue (two enqueues, two fetches) cost a digest more per hold
   than a single notice (issue 22).
2. The safety net: every member stays in ``inflight`` until the window's end plus two
   leases. If the window was never sent (its entry deleted; a process died after its
   take), the sweeper re-sends the members' events then; the first to come finds the
   window due and sends it (step 3), the others find their holds mailed
   (``gathered``). A hold's event that finds its card's window due and not yet taken
   (the pollers behind, or the entry lost) sends that window first, then opens the
   next one.
3. The poller (or, as in step 2, an event) *takes* the window
   (``gather_take.lua``): the window is closed and every member still waiting in it —
   not cancelled, picked up or listed meanwhile — gets the digest's own token and lease,
   so a member's other claims are fenced out (a duplicate event for it is BUSY, and
   comes back after the digest's lease). A hold that arrives after the take opens the
   next window.
4. One mail for the holds taken (one hold: exactly the notice of ``gather_s = 0``), then
   every hold recorded (worker/app/hold_mail.py): mailed, listed (a 5xx; the address
   changed meanwhile) — or, after a transient failure, every hold still within its retry
   horizon joins a window of its card and branch again, ending at the retry's delay (or
   the open one, if newer holds started one): the pollers send that window then, and the
   next attempt is again one mail for what still belongs together. A send that raises
   (a bug, not Redis out of reach) counts a crash on the holds taken (``CRASH_LIMIT``).

What a message did besides its own hold — the results of holds mailed in a window it
sent — goes back to the actor in a :class:`Followup`, to be counted; the poller's sends
come back the same way (:func:`send_due`).
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import replace
from datetime import date
from typing import Any

from ..contact import CallReason, Contact
from ..holds.calls import passed_reason
from ..holds.outcome import Outcome
from ..holds.policy import pickup_passed
from ..ils.events import HoldReady
from ..jdate import now_tokyo
from ..mail.compose import new_token
from ..runtime import Runtime
from ..errors import StoreError
from ..store.client import REDIS_UNREACHABLE
from ..store.core import Claim
from ..store.digest import DueWindow, JoinAsked, Joined
from ..store.vocab import GatherVerdict
from .hold_mail import Finish, Followup, Member, Result, listing, listing_of, mail_holds
from .send import deadline

log = logging.getLogger(__name__)

# Redis out of reach (or holding something unexpected): not the window's fault
_NOT_A_CRASH: tuple[type[Exception], ...] = (StoreError, *REDIS_UNREACHABLE)

# A window's send that raises after its take (a bug: not a relay's refusal, not Redis out
# of reach) counts a crash on each hold taken (gather_crash.lua); a hold the sweeper
# brought back into windows this many times is listed ``worker_error`` at the next take,
# with the error's last line — as worker/queue/actors.py gives up on a single hold after
# its ERROR_RETRIES. One round is two leases plus a sweep (~4.5 min at the shipped
# settings), so about 40 minutes: within the ~2 h a single hold takes.
CRASH_LIMIT = 8


def join_asked(rt: Runtime, ev: HoldReady) -> JoinAsked | None:
    """The window a hold's claim may join at once (``Store.claim_hold``): with a window
    on, for an event that wants e-mail — most of them are mailed, and one that is not
    (its patron's address not approved, its last day passed) is listed all the same,
    its window's take passing it by. One round trip per digest hold less (issue 22)."""
    if rt.settings.digest.gather_s <= 0 or ev.contact != "email":
        return None
    return JoinAsked(ev.card_number, ev.pickup_branch, int(rt.settings.digest.gather_s * 1000),
                     new_token())


async def gather(rt: Runtime, ev: HoldReady, claim: Claim) -> Result:
    """A claimed hold to be mailed: wait in its window (opened, if need be; joined at the
    claim, mostly), or send the window that is due."""
    if claim.joined is not None and claim.joined.verdict == GatherVerdict.WAIT:
        return Result(Outcome.GATHERING, delay_ms=claim.joined.wait_ms,
                      detail=claim.joined.gather_id)
    follow = Followup()
    got = await _join(rt, ev.hold_id, claim.token, ev.card_number, ev.pickup_branch,
                      int(rt.settings.digest.gather_s * 1000), new_token(), follow)
    if isinstance(got, Result):  # it went out in the window that was due
        return replace(got, followup=follow)
    if got is None or got.verdict == GatherVerdict.LOST:
        # fenced out: a digest took the hold (or another message claimed it); come
        # back when that lease is over and see what came of it
        return Result(Outcome.BUSY, delay_ms=int(rt.settings.delivery.lease_s * 1000) + 1000,
                      followup=follow)
    return Result(Outcome.GATHERING, delay_ms=got.wait_ms, detail=got.gather_id,
                  followup=follow)


async def _join(rt: Runtime, hold_id: str, token: str, card: str, branch: str,
                window_ms: int, new_id: str, follow: Followup, again: bool = False
                ) -> Joined | Result | None:
    """Put the hold owned by ``token`` in the open window of ``card`` at ``branch`` (or a
    new one, ``window_ms`` long); a window that is due is sent first. ``again``: after its
    digest failed (the join counts an attempt). The join (WAIT or LOST), the hold's result
    when it went out in the window that was due, or None when windows kept falling due
    (the sweeper brings it back)."""
    lease_ms = int(rt.settings.delivery.lease_s * 1000)
    for _ in range(5):  # a window taken by another worker meanwhile: look again
        j = await rt.store.digest.join(hold_id, token, card, branch, window_ms=window_ms,
                                       lease_ms=lease_ms, new_id=new_id, again=again)
        if j.verdict != GatherVerdict.DUE:
            return j
        # the window's end has passed and no poller has taken it yet (behind, or its entry lost)
        if await send_window(rt, card, branch, j.gather_id, follow):
            for i, (h, r) in enumerate(follow.results):
                if h == hold_id:  # a member's event after the end (a duplicate, the sweeper's)
                    del follow.results[i]
                    return r
    return None


async def due_windows(rt: Runtime, most: int) -> tuple[list[DueWindow], int | None]:
    """Up to ``most`` windows whose end has come (``gather_due``), this process's to send
    for a lease (the other processes leave them alone meanwhile), and the end (ms since
    the epoch) of the next one not yet due (None: no window open)."""
    return await rt.store.digest.due(most, int(rt.settings.delivery.lease_s * 1000))


async def send_due(rt: Runtime, w: DueWindow) -> Followup:
    """Send window ``w`` found due; what came of its holds. A send that raises is logged
    here and raises no further: one window's failure stops no other. Nothing is lost: a
    window not yet taken (Redis out of reach before the take) is found due again when
    this process's claim on its entry ends (a lease); a window taken has its holds in
    ``inflight``, and the sweeper brings them back (a bug counts a crash on them first,
    :func:`send_window`)."""
    follow = Followup()
    try:
        await send_window(rt, w.card, w.branch, w.gather_id, follow)
    except Exception as e:  # noqa: BLE001 - logged; found again, or swept back
        log.error("digest window %s (branch %s) not sent: %s; tried again after a lease,"
                  " or its holds come back by the sweeper", w.gather_id, w.branch,
                  traceback.format_exception_only(e)[-1].strip())
    return follow


async def window_due(rt: Runtime, message: Any) -> Followup:
    """A window's message, as versions before gather_due scheduled one (a window opened
    before an upgrade): send the window, if it is still the one named (a window sent
    meanwhile by the poller or a member's event, or forgotten, is gone: nothing to do)."""
    follow = Followup()
    fields = [message.get(k) for k in ("card_number", "pickup_branch", "gather")] \
        if isinstance(message, dict) else []
    named = [f for f in fields if isinstance(f, str) and f]
    if len(named) != 3:
        # only the worker's own signed messages get here (worker/queue/internal.py)
        log.error("digest window message unreadable; its holds come back by the sweeper")
        return follow
    card, branch, gather_id = named
    await send_window(rt, card, branch, gather_id, follow)
    return follow


async def send_window(rt: Runtime, card: str, branch: str, gather_id: str,
                      follow: Followup | None = None) -> dict[str, Result] | None:
    """Take window ``gather_id`` and mail its holds; each taken hold's result (also added
    to ``follow``), or None when another worker took the window first. A mail's first
    hold counts ``sent``, the others ``gathered``."""
    follow = Followup() if follow is None else follow
    d = rt.settings.delivery
    ds = rt.store.digest
    token = new_token()
    until = deadline(rt)
    took = await ds.take(card, branch, gather_id, token, int(d.lease_s * 1000))
    if took is None:
        return None
    taken, contact = took
    if not taken:
        return {}
    try:
        results = await _send_taken(rt, card, branch, token, until, taken, contact, follow)
    except _NOT_A_CRASH:
        raise  # the sweeper brings its holds back, as before
    except Exception as e:  # noqa: BLE001 - a bug: counted, then raised as before
        error = traceback.format_exception_only(e)[-1].strip()[:500]
        error = error.encode("utf-8", "backslashreplace").decode("utf-8")
        try:
            await ds.crashed(token, [hold_id for hold_id, _ in taken], error)
        except Exception:  # noqa: BLE001 - not counted this time; the error below matters
            log.exception("digest crash not counted")
        raise
    mailed = 0
    for hold_id, r in results.items():
        if r.outcome is Outcome.SENT:
            mailed += 1
            if mailed > 1:  # one mail: counted once
                results[hold_id] = r = replace(r, outcome=Outcome.GATHERED)
        follow.results.append((hold_id, r))
    return results


async def _send_taken(rt: Runtime, card: str, branch: str, token: str, until: float,
                      taken: list[tuple[str, dict[str, str]]], contact: Contact,
                      follow: Followup) -> dict[str, Result]:
    """Mail (or list) the holds a take gave ``token``; each hold's result."""
    members: list[Member] = []
    listed: list[Finish] = []
    now = now_tokyo()
    for hold_id, h in taken:
        try:  # as the claim stored it (model_dump_json of the event it accepted): read
            # back strictly, without parse_event's checks of a producer's JSON (5× dearer)
            ev: HoldReady | None = HoldReady.model_validate_json(
                h.get("event") or "{}", strict=True, context={"branches": rt.branches})
        except ValueError:  # pydantic's ValidationError too: damage
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
        elif int(h.get("crashes") or 0) >= CRASH_LIMIT:  # given up on, as a single hold
            log.error("hold %s: its digest crashed %s times; listed", hold_id, h["crashes"])
            listed.append(listing_of(ev, CallReason.WORKER_ERROR, h.get("crash") or "worker error"))
        else:
            members.append(Member(ev, int(h.get("attempts") or 1),
                                  int(h.get("first_ms") or now.timestamp() * 1000),
                                  h.get("notice") or ""))

    async def regather(again: list[tuple[Member, float]], error: str) -> dict[str, Result]:
        """After a transient failure: the holds wait in a window again, until the retry."""
        out: dict[str, Result] = {}
        new_id = new_token()
        for m, delay in again:
            got = await _join(rt, m.ev.hold_id, token, card, branch, int(delay * 1000),
                              new_id, follow, again=True)
            if isinstance(got, Result):
                out[m.ev.hold_id] = got
            elif got is not None and got.verdict == GatherVerdict.LOST:
                out[m.ev.hold_id] = Result(Outcome.LOST)
            else:  # waits in a window (or, windows falling due, for the sweeper)
                out[m.ev.hold_id] = Result(Outcome.RETRY, delay_ms=got.wait_ms if got else 0,
                                           detail=error)
        log.warning("digest of %d holds: %s; tried again together", len(again), error)
        return out
    return await mail_holds(rt, card, token, members, until, contact=contact,
                            listed=listed, regather=regather)


def _day(h: dict[str, str]) -> date | None:
    try:
        return date.fromisoformat(h.get("pickup_by") or "")
    except ValueError:
        return None
