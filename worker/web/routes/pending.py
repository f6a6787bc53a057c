"""Pending e-mail approvals: approve with the code the patron reads out, without it
(with a reason), or reject (with a reason) — the same functions as ``review``."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from ...app import registration
from ...contact import ContactState
from ...contact.carriers import carrier_label
from ...contact.codes import clean_code
from ...contact.domains import carrier_of
from ...errors import ReviewError
from ..auth import Staff
from ..wording import STATE_JA
from ..base import (action, branches_own_first, chosen_branch, render, settings, store,
                    text_field)


async def page(request: Request) -> Response:
    only = chosen_branch(request)
    rows = await registration.pending_view(store(request), settings(request), only)
    for r in rows:
        r["tag"], r["tag_warn"] = carrier_tag(r)
    groups = [(b, [r for r in rows if r["application_branch"] == b])
              for b in branches_own_first(request) if not only or b == only]
    other = [r for r in rows if r["application_branch"] not in settings(request).branches]
    if other:
        groups.append(("", other))
    return render(request, "pending.html", groups=groups, only=only, total=len(rows))


def carrier_tag(row: dict) -> tuple[str, bool]:
    """The carrier tag, agreeing with the typo hint: ``docomo.co.jp`` is not tagged as
    not-a-carrier while the hint says docomo.ne.jp, but as a likely typo of ドコモ."""
    suggestion = row.get("typo_suggestion")
    if suggestion:
        meant = carrier_of(suggestion.rpartition("@")[2].lower())
        if meant and meant != row.get("carrier"):
            return f"{carrier_label(meant)}の入力ミス?", True
    return row.get("carrier_label") or "", False


def _card(form: FormData) -> str:
    card = text_field(form, "card", 64)
    if not card:
        raise ReviewError("カード番号がありません。ページを読み込み直してください。")
    return card


def _shown(form: FormData) -> str:
    """The registration the row showed (its id): only that one may be acted on. A code
    is bound to its registration by itself; without one, the id is needed."""
    shown = text_field(form, "registration", 200)
    if not shown:
        raise ReviewError("どの登録への操作か分かりません。ページを読み込み直してください。")
    return shown


@action("/pending")
async def approve_with_code(request: Request, form: FormData, who: Staff) -> str:
    card = _card(form)
    try:
        code = clean_code(text_field(form, "code", 40))
    except ValueError:
        raise ReviewError(f"カード {card}: 受付番号は6桁の数字です(例: 042917)。"
                          "利用者が読み上げた番号を入力してください。") from None
    before = await registration.approve(store(request), settings(request), card, who.staff_id,
                                        shown=text_field(form, "registration", 200) or None,
                                        code=code)
    return (f"カード {card} の {before.get('pending_address')} を承認しました"
            "(受付番号を確認)。今後の予約連絡はメールで届きます。")


@action("/pending")
async def approve_without_code(request: Request, form: FormData, who: Staff) -> str:
    card, reason = _card(form), text_field(form, "reason")
    before = await registration.approve(store(request), settings(request), card, who.staff_id,
                                        shown=_shown(form), reason=reason)
    return (f"カード {card} の {before.get('pending_address')} を受付番号なしで承認しました"
            f"(理由: {reason})。")


@action("/pending")
async def reject(request: Request, form: FormData, who: Staff) -> str:
    card, reason = _card(form), text_field(form, "reason")
    if not reason:
        raise ReviewError("却下するには理由が必要です。")
    before = await registration.reject(store(request), card, who.staff_id, reason,
                                       shown=_shown(form))
    back = before.get("prev_state") or ContactState.NONE
    return (f"カード {card} の {before.get('pending_address')} の登録を却下しました"
            f"(登録前の状態「{STATE_JA.get(back, back)}」に戻りました)。")
