"""The phone-call list per pickup branch, by deadline; marking a call done, and undoing it."""

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
    done = await calls_mod.recently_called(store(request), only)
    return render(request, "calls.html", groups=groups, only=only, total=len(rows),
                  today=today().isoformat(), done=done)


def _hold(form: FormData) -> str:
    hold_id = text_field(form, "hold_id", 128)
    if not hold_id:
        raise ReviewError("予約番号がありません。ページを読み込み直してください。")
    return hold_id


@action("/calls")
async def called(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    hold_id = _hold(form)
    entry = await calls_mod.mark_called(store(request), hold_id, who.staff_id,
                                        text_field(form, "note"))
    # back at the hold, now in 「連絡済みにした予約」 with its undo button
    return (f"予約 {hold_id}(カード {entry.get('card_number')})を連絡済みにしました。"
            "間違えたときは「取り消す」でリストに戻せます。", f"called-{hold_id}")


@action("/calls")
async def uncall(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    hold_id = _hold(form)
    entry = await calls_mod.uncall(store(request), hold_id, who.staff_id,
                                   text_field(form, "note"))
    return (f"予約 {hold_id}(カード {entry.get('card_number')})の連絡済みを取り消し、"
            "電話連絡リストに戻しました。", f"call-{hold_id}")
