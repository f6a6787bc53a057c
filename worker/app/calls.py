"""The staff phone-call list: what to show, marking a call done and undoing that
(CLI and web alike)."""

from __future__ import annotations

import json
from typing import Any

from ..contact import CallReason, ContactState
from ..contact.changes import AuditKind, audit_entry
from ..errors import AlreadyDone, NotConfirmed, ReviewError
from ..holds.calls import CALL_FIELDS
from ..holds.retention import undo_offered
from ..jdate import now_tokyo
from ..store.core import Store
from ..store.vocab import HoldStatus


# reason (why listed) → patron state now → what the list says instead, so staff do not
# read out a reason that is no longer true ("承認待ち" after the address was approved)
_SINCE: dict[tuple[str, str], str] = {
    (CallReason.APPROVAL_PENDING, ContactState.ACTIVE):
        "登録時は承認待ち(その後承認済み。次の連絡からメール)",
    (CallReason.APPROVAL_PENDING, ContactState.NONE): "登録時は承認待ち(その後アドレス削除・却下)",
    (CallReason.SUSPENDED, ContactState.ACTIVE): "登録時はメール停止中(その後再開済み。次の連絡からメール)",
    (CallReason.SUSPENDED, ContactState.NONE): "登録時はメール停止中(その後アドレス削除)",
    (CallReason.NO_ADDRESS, ContactState.PENDING): "アドレス未登録だった(その後登録あり。承認待ち)",
    (CallReason.NO_ADDRESS, ContactState.ACTIVE):
        "アドレス未登録だった(その後登録・承認済み。次の連絡からメール)",
}


def reason_now(reason: str | None, state: str | None) -> str | None:
    """The listing reason rewritten when the patron's state has changed since; None
    when the reason is still true."""
    return _SINCE.get((reason or "", state or ContactState.NONE))


def _name(event: str | None) -> str:
    """The patron's name from the stored event (shown to staff only; never logged)."""
    try:
        name = json.loads(event or "{}").get("patron_name")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(name, str):
        return ""
    return "".join(c for c in name if c.isprintable())[:100]


def _phone_number(event: str | None) -> str:
    """The patron's phone number from the stored event (validated on the way in), if any."""
    try:
        phone = json.loads(event or "{}").get("patron_phone")
    except (ValueError, AttributeError):
        return ""
    return phone if isinstance(phone, str) and phone.isprintable() else ""


async def calls_view(store: Store, branch: str | None = None) -> list[dict[str, Any]]:
    """The list, earliest pickup deadline first (optionally one pickup branch), with
    the patron's name and the reason as it stands now."""
    rows = [{k: r.get(k) for k in CALL_FIELDS} for r in await store.calls(branch)]
    if not rows:
        return rows
    got = await store.events_and_states([(str(r["hold_id"]), r["card_number"] or "")
                                         for r in rows])
    for r, (event, state) in zip(rows, got):
        r["patron_name"] = _name(event)
        r["patron_phone"] = _phone_number(event)
        r["reason_now"] = reason_now(r["reason"], state)
    return rows


async def mark_called(store: Store, hold_id: str, staff: str, note: str = "") -> dict[str, Any]:
    """Take a hold off the list because staff phoned; the patron's audit line is written
    in the same step (a kill cannot leave a call nobody can account for)."""
    entry = await store.mark_called(hold_id, {"hold_id": hold_id, "staff": staff, "note": note},
                                    audit_entry(AuditKind.CALLED, staff, note, hold_id=hold_id))
    if entry is None:
        status, _ = await store.call_state(hold_id)
        if status == HoldStatus.CALLED:  # a repeat (a double click; after NotConfirmed)
            raise AlreadyDone(f"hold {hold_id} is marked called already; nothing was changed",
                              kind="already_called", hold_id=hold_id)
        raise ReviewError(f"hold {hold_id} is not on the phone-call list "
                          "(already called, cancelled, picked up, or never listed)",
                          kind="not_on_call_list", hold_id=hold_id)
    return entry


async def mark_entry_called(store: Store, hold_ids: list[str], staff: str,
                            note: str = "") -> tuple[list[dict[str, Any]], list[str]]:
    """One call told the patron about several holds (an entry of the grouped list, see
    worker/app/call_groups.py): mark each, each audited. Returns the holds marked and
    those no longer on the list (a colleague marked it, or it was cancelled meanwhile);
    a ReviewError only when none was (``AlreadyDone`` when each was marked already: a
    repeat). Each hold is confirmed by the replicas as it is marked; if any was not,
    the others are still marked and ``NotConfirmed`` is raised at the end."""
    done, gone, already = [], [], []
    unconfirmed: NotConfirmed | None = None
    for hold_id in dict.fromkeys(hold_ids):  # once each, in the order given
        try:
            done.append(await mark_called(store, hold_id, staff, note))
        except AlreadyDone:
            already.append(hold_id)
        except ReviewError:
            gone.append(hold_id)
        except NotConfirmed as e:
            unconfirmed = e
    if unconfirmed is not None:
        raise unconfirmed
    if not done and already:
        raise AlreadyDone(f"holds {', '.join(already)} are marked called already; nothing "
                          "was changed", kind="already_called", hold_id="、".join(already))
    gone += already
    if not done:
        raise ReviewError(f"none of the holds {', '.join(gone)} is on the phone-call list "
                          "(already called, cancelled, picked up, or never listed)",
                          kind="not_on_call_list", hold_id=gone[0] if gone else "")
    return done, gone


async def uncall(store: Store, hold_id: str, staff: str, note: str = "") -> dict[str, Any]:
    """Put a hold marked as phoned back on the list (a misclick); audited."""
    entry = await store.uncall(hold_id, {"hold_id": hold_id, "staff": staff, "note": note},
                               audit_entry(AuditKind.UNCALLED, staff, note, hold_id=hold_id))
    if entry is None:
        status, listed = await store.call_state(hold_id)
        if listed and status != HoldStatus.CALLED:  # undone already: a repeat
            raise AlreadyDone(f"hold {hold_id} is back on the phone-call list already; "
                              "nothing was changed", kind="already_uncalled", hold_id=hold_id)
        raise ReviewError(f"hold {hold_id} is not marked as phoned (never was, already undone, "
                          "or cancelled or picked up since); nothing was changed",
                          kind="not_called", hold_id=hold_id)
    return entry


async def recently_called(store: Store, branch: str | None = None,
                          n: int = 10) -> list[dict[str, Any]]:
    """Holds staff marked as phoned lately that can still be undone, newest first."""
    seen: set[str] = set()
    rows = []
    for rec in await store.recently_called(50):
        hold_id = rec.get("hold_id") or ""
        if hold_id in seen:
            continue
        seen.add(hold_id)  # the newest record of a hold decides (an undo cancels a mark)
        if rec.get("undo"):
            continue
        h = await store.get_hold(hold_id)
        if not undo_offered(h, now_tokyo()):
            continue
        entry = json.loads(h["called_entry"])
        if branch and entry.get("pickup_branch") != branch:
            continue
        rows.append({**{k: entry.get(k) for k in CALL_FIELDS},
                     "patron_name": _name(h.get("event")), "staff": rec.get("staff"),
                     "note": rec.get("note"), "at": rec.get("at")})
        if len(rows) >= n:
            break
    return rows
