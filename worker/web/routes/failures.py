"""Delivery failures: plain reason, advice for the patron, the diagnostic; re-enable
or remove the address (the same functions as ``review``)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ... import suspension
from ...errors import ReviewError
from ...registry import Registry
from ..auth import Staff
from ..base import action, render, store, text_field


async def page(request: Request) -> Response:
    rows = await suspension.failures_view(store(request))
    reg, states, seen = Registry(store(request)), {}, set()
    for r in rows:
        card = r.get("card_number")
        if card and card not in states:
            states[card] = (await reg.get(card)).get("state") or "none"
        # the actions go with the newest failure of each card only
        r["first_of_card"] = card not in seen
        seen.add(card)
    return render(request, "failures.html", rows=rows, states=states)


def _card_reason(form: FormData) -> tuple[str, str]:
    card = text_field(form, "card", 64)
    if not card:
        raise ReviewError("カード番号がありません。ページを読み込み直してください。")
    return card, text_field(form, "reason")


@action("/failures")
async def reenable(request: Request, form: FormData, who: Staff) -> str:
    card, reason = _card_reason(form)
    await suspension.reenable(store(request), card, who.staff_id, reason)
    return f"カード {card} のメール連絡を再開しました。今後の予約連絡はメールで届きます。"


@action("/failures")
async def remove(request: Request, form: FormData, who: Staff) -> str:
    card, reason = _card_reason(form)
    await suspension.remove_address(store(request), card, who.staff_id, reason)
    return f"カード {card} のメールアドレスを削除しました。今後の予約連絡は電話です。"
