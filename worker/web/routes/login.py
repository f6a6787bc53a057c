"""Logging in and out."""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..auth import Accounts, Throttled, same_token
from ..base import forbidden, render, safe_next, settings, staff, store


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _form(request: Request, status_code: int = 200, error: str = "", staff_id: str = "",
          next_path: str = "/") -> Response:
    token = request.session.get("login_csrf") or secrets.token_urlsafe(32)
    request.session["login_csrf"] = token
    return render(request, "login.html", status_code=status_code, login_csrf=token,
                  error=error, staff_id=staff_id, next_path=next_path)


async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"), "/")
    if request.state.staff is not None:
        return RedirectResponse(next_path, status_code=303)
    return _form(request, next_path=next_path)


async def login_submit(request: Request) -> Response:
    form = await request.form()
    next_path = safe_next(form.get("next"), "/")
    staff_id = str(form.get("staff_id") or "").strip()[:64]
    if not same_token(form.get("csrf"), request.session.get("login_csrf")):
        return forbidden(request, "ログイン画面の有効期限が切れました。ログイン画面を開き直してください。")
    accounts = Accounts(store(request), settings(request).web)
    try:
        sid = await accounts.login(staff_id, str(form.get("password") or ""), _client(request))
    except Throttled:
        minutes = max(1, settings(request).web.login_window_s // 60)
        return _form(request, 429, f"ログインの失敗が続いたため、一時的にログインできません。"
                                   f"約{minutes}分後にもう一度お試しください。", staff_id, next_path)
    if sid is None:
        return _form(request, 401, "職員IDまたはパスワードが違います。", staff_id, next_path)
    old = request.session.get("sid")
    if old:
        await accounts.logout(old)
    request.session.clear()  # a fresh session: nothing from before the login carries over
    request.session["sid"] = sid
    return RedirectResponse(next_path, status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form()
    who = staff(request)
    if not same_token(form.get("csrf"), who.csrf):
        return forbidden(request, "不正な送信です。ページを読み込み直してください。")
    await Accounts(store(request), settings(request).web).logout(who.sid)
    request.session.clear()
    request.session["flash"] = ["ok", "ログアウトしました。"]
    return RedirectResponse("/login", status_code=303)
