"""The phone-call list per pickup branch, by deadline; marking a call done, and undoing it."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ...app import calls as calls_mod
from ...app.call_groups import group_calls, tel_uri
from ...errors import ReviewError
from ...jdate import now_tokyo
from ..auth import Staff
from ..base import action, branches_own_first, chosen_branch, render, store, text_field, today


async def page(request: Request) -> Response:
    only = chosen_branch(request)
    rows = await calls_mod.calls_view(store(request), only)
    # one entry per patron per pickup branch (worker/app/call_groups.py)
    entries = group_calls(rows)
    groups = [(b, [g for g in entries if g.pickup_branch == b])
              for b in branches_own_first(request) if not only or b == only]
    done = await calls_mod.recently_called(store(request), only)
    return render(request, "calls.html", groups=groups, only=only, total=len(rows),
                  patrons=len(entries), today=today().isoformat(), done=done, tel_uri=tel_uri)


async def printable(request: Request) -> Response:
    """「印刷」: the call list on A4 portrait, each branch from a new page, one block per
    patron that never breaks across pages, a box to tick and a line for a note; the
    branch and date repeat at the top of every page (the table's header), the page
    number at the bottom (print.css). Nothing of the site's navigation."""
    only = chosen_branch(request)
    entries = group_calls(await calls_mod.calls_view(store(request), only))
    groups = [(b, [g for g in entries if g.pickup_branch == b])
              for b in branches_own_first(request) if not only or b == only]
    return render(request, "calls_print.html", groups=[(b, g) for b, g in groups if g or only],
                  only=only, printed=now_tokyo())


def _hold(form: FormData) -> str:
    hold_id = text_field(form, "hold_id", 128)
    if not hold_id:
        raise ReviewError("予約番号がありません。ページを読み込み直してください。")
    return hold_id


def _holds(form: FormData) -> list[str]:
    """The holds of the entry as the page showed them: only what staff saw is marked
    (a hold listed after the page was loaded was not told on the phone)."""
    ids = [v for v in form.getlist("hold_id") if isinstance(v, str)]
    ids = ["".join(c for c in v if c.isprintable()).strip()[:128] for v in ids[:50]]
    if not any(ids):
        raise ReviewError("予約番号がありません。ページを読み込み直してください。")
    return [i for i in ids if i]


@action("/calls")
async def called(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    ids = _holds(form)
    if len(ids) > 1:
        done, gone = await calls_mod.mark_entry_called(store(request), ids, who.staff_id,
                                                       text_field(form, "note"))
        text = (f"カード {done[0].get('card_number') or '-'} の予約{len(done)}点"
                f"({'、'.join(e['hold_id'] for e in done)})を連絡済みにしました。")
        if gone:
            text += f"予約 {'、'.join(gone)} は既にリストにありませんでした。"
        return (text + "間違えたときは「取り消す」で1点ずつリストに戻せます。",
                f"called-{done[0]['hold_id']}")
    hold_id = ids[0]
    entry = await calls_mod.mark_called(store(request), hold_id, who.staff_id,
                                        text_field(form, "note"))
    # back at the hold, now in 「連絡済みにした予約」 with its undo button
    return (f"予約 {hold_id}(カード {entry.get('card_number') or '-'})を連絡済みにしました。"
            "間違えたときは「取り消す」でリストに戻せます。", f"called-{hold_id}")


@action("/calls")
async def uncall(request: Request, form: FormData, who: Staff) -> tuple[str, str]:
    hold_id = _hold(form)
    entry = await calls_mod.uncall(store(request), hold_id, who.staff_id,
                                   text_field(form, "note"))
    return (f"予約 {hold_id}(カード {entry.get('card_number') or '-'})の連絡済みを取り消し、"
            "電話連絡リストに戻しました。", f"call-{hold_id}")
