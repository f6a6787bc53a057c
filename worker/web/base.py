"""What every page shares: templates (autoescaped), the logged-in staff member,
CSRF-checked actions, flash messages, Japanese wording of states and errors."""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..errors import ReviewError
from ..jdate import TOKYO, ja_date, ja_datetime
from ..settings import Settings
from ..store import Store
from .auth import Staff, same_token

TEMPLATES = Path(__file__).with_name("templates")

STATE_JA = {"none": "未登録(電話連絡)", "pending": "承認待ち(本人からの電話待ち)",
            "active": "メール利用中", "suspended": "メール停止中(不達)"}
CONFIRMATION_JA = {"sent": "送信済み", "refused": "送信できず(受信拒否など)",
                   "sending": "送信中", None: "-", "": "-"}
CODE_JA = {"valid": "有効", "expired": "期限切れ", "locked": "ロック(誤入力が上限)"}

# ReviewError messages (English, shared with the CLI) → what a librarian reads
_ERRORS_JA: list[tuple[re.Pattern[str], str]] = [(re.compile(p), t) for p, t in [
    (r"wrong code for card (.+); (\d+) tries left",
     "カード {0}: 受付番号が違います。あと {1} 回入力できます。"),
    (r"wrong code for card (.+); the code is now locked",
     "カード {0}: 受付番号が違います。誤入力が上限に達したため、番号はロックされました。"
     "理由を書いて「番号なしで承認」するか、再登録をご案内ください。"),
    (r"the code for card (.+) is locked after (\d+) wrong tries",
     "カード {0}: 受付番号は {1} 回の誤入力でロックされています。"
     "理由を書いて「番号なしで承認」するか、再登録をご案内ください。"),
    (r"the code for card (.+) has expired",
     "カード {0}: 受付番号の有効期限が切れています。"
     "理由を書いて「番号なしで承認」するか、再登録をご案内ください。"),
    (r"card (.+) is not awaiting approval \(its state is (\w+)\)",
     "カード {0} は承認待ちではありません(現在: {1})。何も変更していません。"),
    (r"approving without the code needs a reason",
     "番号なしで承認するには理由が必要です。"),
    (r"hold (.+) is not on the phone-call list",
     "予約 {0} は電話連絡リストにありません(連絡済み・取消・受取済みなど)。"),
    (r"re-enabling needs a reason", "再開するには理由(利用者が何を変更したか)が必要です。"),
    (r"card (.+) is not suspended \(its state is (\w+)\)",
     "カード {0} はメール停止中ではありません(現在: {1})。何も変更していません。"),
    (r"removing an address needs a reason", "アドレスを削除するには理由が必要です。"),
]]


# audit log entries (English, shared with `review history`) → Japanese for the patron page
_AUDIT_JA: list[tuple[re.Pattern[str], str]] = [(re.compile(p + "$"), t) for p, t in [
    (r"address registered, awaiting the patron's call", "アドレス登録(本人からの電話待ち)"),
    (r"address refused; state unchanged", "アドレスを受付できず(状態は変更なし)"),
    (r"approved after the patron's call \(code checked\)", "承認(受付番号を確認)"),
    (r"approved after the patron's call WITHOUT the code", "承認(受付番号なし)"),
    (r"registration rejected", "登録を却下"),
    (r"address removed", "アドレス削除"),
    (r"address suspended", "メール停止(不達)"),
    (r"approved address suspended \(new one still pending\)",
     "承認済みアドレスをメール停止(新しいアドレスは承認待ち)"),
    (r"delivery failure; address not suspended", "メール不達(アドレスは停止せず)"),
    (r"delivery failure", "メール不達"),
    (r"address re-enabled", "メール再開"),
    (r"phoned about hold (.+)", "電話連絡済み(予約 {0})"),
    (r"state → (\w+)", "状態を変更: {0}"),
]]


def audit_ja(what: str) -> str:
    for pattern, text in _AUDIT_JA:
        m = pattern.match(what or "")
        if m:
            return text.format(*[STATE_JA.get(g, g) for g in m.groups()])
    return what


def error_ja(message: str) -> str:
    for pattern, text in _ERRORS_JA:
        m = pattern.match(message)
        if m:
            groups = [STATE_JA.get(g, g) for g in m.groups()]
            return text.format(*groups)
    return message


def _as_dt(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return None


def f_datetime(value: Any) -> str:
    dt = _as_dt(value)
    if dt is None:
        return str(value or "-")
    return ja_datetime(dt if dt.tzinfo else dt.replace(tzinfo=TOKYO))


def f_date(value: Any) -> str:
    try:
        return ja_date(value if isinstance(value, date) else date.fromisoformat(str(value)))
    except (TypeError, ValueError):
        return str(value or "-")


def today() -> date:
    return datetime.now(TOKYO).date()


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(ja_datetime=f_datetime, ja_date=f_date,
                       state_ja=lambda s: STATE_JA.get(s or "none", s),
                       confirmation_ja=lambda s: CONFIRMATION_JA.get(s, s),
                       code_ja=lambda s: CODE_JA.get(s, s), error_ja=error_ja,
                       audit_ja=audit_ja)
    return env


def store(request: Request) -> Store:
    return request.app.state.store


def settings(request: Request) -> Settings:
    return request.app.state.settings


def staff(request: Request) -> Staff:
    return request.state.staff


def branch_name(request: Request, code: str | None) -> str:
    b = settings(request).branches.get(code or "")
    return b.name if b else (code or "-")


def branches_own_first(request: Request) -> list[str]:
    """The branch codes, the logged-in staff member's own branch first."""
    codes = list(settings(request).branches)
    own = staff(request).branch
    return ([own] if own in codes else []) + [c for c in codes if c != own]


def chosen_branch(request: Request) -> str | None:
    b = request.query_params.get("branch") or None
    return b if b in settings(request).branches else None


def flash(request: Request, kind: str, text: str) -> None:
    request.session["flash"] = [kind, text]


def render(request: Request, template: str, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.jinja
    who: Staff | None = getattr(request.state, "staff", None)
    message = request.session.pop("flash", None)
    html = env.get_template(template).render(
        request=request, staff=who, csrf=who.csrf if who else "", flash=message,
        branches=settings(request).branches, path=request.url.path, **ctx)
    return HTMLResponse(html, status_code=status_code)


def safe_next(value: Any, default: str) -> str:
    """Only a path on this site (no //host, no scheme) may be a redirect target."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") \
            and "\\" not in value and not any(ord(c) < 33 for c in value):
        return value
    return default


def forbidden(request: Request, why: str) -> HTMLResponse:
    return render(request, "error.html", status_code=403, title="操作できません", message=why)


Action = Callable[[Request, FormData, Staff], Awaitable[str]]


def action(default_next: str) -> Callable[[Action], Callable[[Request], Awaitable[Response]]]:
    """A POST handler: checks the CSRF token, runs ``fn`` with the session's staff
    member, and redirects (303) to the form's ``next`` path with a message. A
    :class:`ReviewError` (wrong code, not pending, …) is shown as an error instead."""
    def wrap(fn: Action) -> Callable[[Request], Awaitable[Response]]:
        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            who = staff(request)
            if not same_token(form.get("csrf"), who.csrf):
                return forbidden(request, "フォームの有効期限が切れたか、不正な送信です。"
                                          "ページを読み込み直してから、もう一度操作してください。")
            target = safe_next(form.get("next"), default_next)
            try:
                flash(request, "ok", await fn(request, form, who))
            except ReviewError as e:
                flash(request, "error", error_ja(str(e)))
            return RedirectResponse(target, status_code=303)
        endpoint.is_action = True  # type: ignore[attr-defined]
        return endpoint
    return wrap


def text_field(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    # one line of plain text for the audit log: control characters become spaces
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value).strip()[:limit]


def login_url(path: str) -> str:
    return "/login?" + urlencode({"next": path}) if path not in ("/", "/login") else "/login"
