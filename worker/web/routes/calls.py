"""The phone-call list per pickup branch, by deadline; marking a call done."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ... import calls as calls_mod
from ...errors import ReviewError
from ..auth import Staff
from ..base import action, branches_own_first, chosen_branch, render, store, text_field, today


async def page(request: Request) -> Response:
    only = chosen_branch(request)
    rows = await calls_mod.calls_view(store(request), only)
    groups = [(b, [r for r in rows if r["pickup_branch"] == b])
              for b in branches_own_first(request) if not only or b == only]
    return render(request, "calls.html", groups=groups, only=only, total=len(rows),
                  today=today().isoformat())


@action("/calls")
async def called(request: Request, form: FormData, who: Staff) -> str:
    hold_id = text_field(form, "hold_id", 128)
    if not hold_id:
        raise ReviewError("予約番号がありません。ページを読み込み直してください。")
    entry = await calls_mod.mark_called(store(request), hold_id, who.staff_id,
                                        text_field(form, "note"))
    return f"予約 {hold_id}(カード {entry.get('card_number')})を連絡済みにしました。"
