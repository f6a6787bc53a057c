"""Delivery failures: plain reason, advice for the patron, the diagnostic; re-enable
or remove the address (the same functions as ``review``). A failure staff have acted
on since (or whose address is gone) is shown as handled and leaves the counts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ...app import sender_problems, suspension
from ...contact import ContactState
from ...contact.changes import AUDIT_WHAT, AuditKind
from ...errors import ReviewError
from ...store.core import Store
from ..auth import Staff
from ..base import action, render, store, text_field

NO_MAILBOX = {"userunknown", "hostunknown"}  # re-enabling cannot help: not the primary button
# audit kinds (worker/contact/changes.py) that fix a card's mail, and that record a failure
FIXING = {AuditKind.REENABLED, AuditKind.REMOVED, AuditKind.APPROVED,
          AuditKind.APPROVED_WITHOUT_CODE}
FAILING = {AuditKind.SUSPENDED, AuditKind.SUSPENDED_WHILE_PENDING,
           AuditKind.FAILURE_NOT_SUSPENDED, AuditKind.FAILURE_NOTED}
KIND_OF_WHAT = {what: kind for kind, what in AUDIT_WHAT.items()}  # entries without a kind


def _at(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def _fixed_at(history: list[dict[str, Any]]) -> datetime | None:
    """When staff last fixed the card's mail, if that came after its last recorded failure."""
    kinds = [h.get("kind") or KIND_OF_WHAT.get(h.get("what") or "") for h in history]
    last_fail = max((i for i, k in enumerate(kinds) if k in FAILING), default=-1)
    last_fix = max((i for i, k in enumerate(kinds) if k in FIXING), default=-1)
    return _at(history[last_fix].get("at")) if last_fix > last_fail else None


async def failures_with_state(s: Store) -> tuple[list[dict[str, Any]], dict[str, dict[str, str]]]:
    """Failures newest first, each with ``handled`` and ``first_of_card``; and per card
    its state and full address (staff read it back to the patron)."""
    rows = await suspension.failures_view(s)
    reg, seen = s.contacts, set()
    cards: dict[str, dict[str, str]] = {}
    fixed: dict[str, datetime | None] = {}  # when staff last fixed the card's mail
    for r in rows:
        card = r.get("card_number")
        if card and card not in cards:
            rec = await reg.get(card)
            fixed[card] = _fixed_at(await s.history(card))
            cards[card] = {"state": rec.get("state") or ContactState.NONE,
                           "address": rec.get("address") or rec.get("suspended_address") or ""}
        at, last = _at(r.get("at")), fixed.get(card or "")
        state = cards[card]["state"] if card else ""
        r["handled"] = bool(card) and (state == ContactState.NONE
                                       or bool(last and at and last >= at))
        r["first_of_card"] = bool(card) and card not in seen  # the actions go with the newest
        seen.add(card)
    return rows, cards


async def page(request: Request) -> Response:
    rows, cards = await failures_with_state(store(request))
    # failures our sender caused: one alert at the top, never a row per patron
    rows = [r for r in rows if not r.get("sender_problem")]
    alert = await sender_problems.current(store(request))
    return render(request, "failures.html", rows=rows, cards=cards, no_mailbox=NO_MAILBOX,
                  alert=alert,
                  open_count=sum(1 for r in rows if not r["handled"] and r.get("card_number")))


def _card_reason(form: FormData) -> tuple[str, str]:
    card = text_field(form, "card", 64)
    if not card:
        raise ReviewError("カード番号がありません。ページを読み込み直してください。")
    return card, text_field(form, "reason")


@action("/failures")
async def reenable(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    card, reason = _card_reason(form)
    await suspension.reenable(store(request), card, who.staff_id, reason)
    return (f"カード {card} のメール連絡を再開しました。今後の予約連絡はメールで届きます。",
            text_field(form, "anchor", 200))


@action("/failures")
async def remove(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    card, reason = _card_reason(form)
    await suspension.remove_address(store(request), card, who.staff_id, reason)
    return (f"カード {card} のメールアドレスを削除しました。今後の予約連絡は電話です。",
            text_field(form, "anchor", 200))


@action("/failures")
async def sender_fixed(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    await sender_problems.close(store(request), who.staff_id)
    return ("送信元の問題を「解決済み」にしました。再び起きたときは、ここにまた表示されます。",
            "sender-problem")
