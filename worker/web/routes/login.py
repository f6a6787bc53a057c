"""Logging in and out."""

from __future__ import annotations

import ipaddress
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..auth import Accounts, Throttled, same_token
from ..base import flash, forbidden, page_of, render, safe_next, settings, staff, store

LOST = ("ログインの有効期限が切れていたため、直前の操作は行われていません。"
        "ログインし直してから、もう一度入力してください。")


def client_address(request: Request) -> str:
    """The connecting address; behind a proxy named in ``[web] trusted_proxies``, the
    nearest address in X-Forwarded-For that is not one of those proxies."""
    peer = request.client.host if request.client else "unknown"
    trusted = [ipaddress.ip_network(n, strict=False) for n in settings(request).web.trusted_proxies]

    def is_trusted(addr: str) -> bool:
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not trusted or not is_trusted(peer):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",")]
    for hop in reversed([h for h in hops if h]):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a garbled header: count the proxy, not a made-up address
    return peer


def _next(value: object) -> str:
    return page_of(safe_next(value, "/"))


def _form(request: Request, status_code: int = 200, error: str = "", staff_id: str = "",
          next_path: str = "/", lost: bool = False) -> Response:
    token = request.session.get("login_csrf") or secrets.token_urlsafe(32)
    request.session["login_csrf"] = token
    return render(request, "login.html", status_code=status_code, login_csrf=token,
                  error=error, staff_id=staff_id, next_path=next_path, lost=lost,
                  focus_password=bool(staff_id))


async def login_page(request: Request) -> Response:
    next_path = _next(request.query_params.get("next"))
    if request.state.staff is not None:
        return RedirectResponse(next_path, status_code=303)
    return _form(request, next_path=next_path, lost=request.query_params.get("lost") == "1")


def _throttled(request: Request, t: Throttled) -> str:
    minutes = max(1, -(-t.seconds // 60))
    if t.why == "slow":
        return (f"パスワードの誤りが続いたため、{t.seconds}秒お待ちいただいてから"
                "もう一度入力してください。")
    if t.why == "client":
        return (f"この端末からのログインの失敗が続いたため、約{minutes}分間この端末からは"
                "ログインできません。いつもお使いの端末からはログインできます。")
    return (f"この職員IDへのログインの失敗が続いたため、約{minutes}分間、初めての端末からは"
            "ログインできません。いつもお使いの端末からはログインできます。")


async def login_submit(request: Request) -> Response:
    form = await request.form()
    next_path = _next(form.get("next"))
    lost = form.get("lost") == "1"
    staff_id = str(form.get("staff_id") or "").strip()[:64]
    if not same_token(form.get("csrf"), request.session.get("login_csrf")):
        return forbidden(request, "ログイン画面の有効期限が切れました。ログイン画面を開き直してください。")
    accounts = Accounts(store(request), settings(request).web)
    try:
        done = await accounts.login(staff_id, str(form.get("password") or ""),
                                    client_address(request))
    except Throttled as t:
        return _form(request, 429, _throttled(request, t), staff_id, next_path, lost)
    if done is None:
        return _form(request, 401, "職員IDまたはパスワードが違います。", staff_id, next_path, lost)
    old = request.session.get("sid")
    if old:
        await accounts.logout(old)
    request.session.clear()  # a fresh session: nothing from before the login carries over
    request.session["sid"] = done.sid
    if done.missed:
        flash(request, "error", f"前回のログインの後、この職員IDで{done.missed}回パスワードが"
                                "間違って入力されました。心当たりがなければシステム担当に"
                                "お知らせください。")
    elif lost:
        flash(request, "error", LOST)
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
