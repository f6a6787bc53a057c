"""What every page shares: templates (autoescaped), the logged-in staff member,
CSRF-checked actions, flash messages, Japanese wording of states and errors."""

from __future__ import annotations

from datetime import date, datetime
from functools import wraps
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote, urlencode

import jinja2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..contact import ContactState
from ..errors import AlreadyDone, NotConfirmed, ReviewError
from ..jdate import TOKYO, ja_date, ja_datetime
from ..settings import Settings
from ..store.core import Store
from .auth import Staff, same_token
from .wording import (CODE_JA, CONFIRMATION_JA, NOT_CONFIRMED_JA, STATE_JA, audit_ja, audit_why_ja, error_ja,
                      staff_ja)


TEMPLATES = Path(__file__).with_name("templates")

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
    """``12月5日(土)``, with the year in front when it is not this year."""
    try:
        d = value if isinstance(value, date) else date.fromisoformat(str(value))
    except (TypeError, ValueError):
        return str(value or "-")
    return ja_date(d) if d.year == today().year else f"{d.year}年{ja_date(d)}"


def today() -> date:
    return datetime.now(TOKYO).date()


def make_env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(ja_datetime=f_datetime, ja_date=f_date,
                       state_ja=lambda s: STATE_JA.get(s or ContactState.NONE, s),
                       confirmation_ja=lambda s: CONFIRMATION_JA.get(s, s),
                       code_ja=lambda s: CODE_JA.get(s, s), audit_ja=audit_ja,
                       audit_why_ja=audit_why_ja, staff_ja=staff_ja)
    return env


def store(request: Request) -> Store:
    return request.app.state.store


def settings(request: Request) -> Settings:
    return request.app.state.settings


def staff(request: Request) -> Staff:
    return request.state.staff


def branches_own_first(request: Request) -> list[str]:
    """The branch codes, the logged-in staff member's own branch first."""
    codes = list(settings(request).branches)
    own = staff(request).branch
    return ([own] if own in codes else []) + [c for c in codes if c != own]


def chosen_branch(request: Request) -> str | None:
    b = request.query_params.get("branch") or None
    return b if b in settings(request).branches else None


def flash(request: Request, kind: str, text: str, anchor: str = "") -> None:
    """A message for the next page; with ``anchor`` it is shown in the card of that id
    (the page returns there) instead of at the top."""
    request.session["flash"] = [kind, text, anchor]


def render(request: Request, template: str, status_code: int = 200,
           headers: dict[str, str] | None = None, **ctx: Any) -> HTMLResponse:
    env: jinja2.Environment = request.app.state.jinja
    who: Staff | None = getattr(request.state, "staff", None)
    message = request.session.pop("flash", None)
    html = env.get_template(template).render(
        request=request, staff=who, csrf=who.csrf if who else "", flash=message,
        branches=settings(request).branches, path=request.url.path, **ctx)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def safe_next(value: Any, default: str) -> str:
    """Only a path on this site (no //host, no scheme) may be a redirect target."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") \
            and "\\" not in value and not any(ord(c) < 33 for c in value):
        return value
    return default


def forbidden(request: Request, why: str) -> HTMLResponse:
    return render(request, "error.html", status_code=403, title="操作できません", message=why)


Action = Callable[[Request, FormData, Staff], Awaitable["str | tuple[str, str]"]]


def action(default_next: str) -> Callable[[Action], Callable[[Request], Awaitable[Response]]]:
    """A POST handler: checks the CSRF token, runs ``fn`` with the session's staff
    member, and redirects (303) to the form's ``next`` page with a message, back at the
    card acted on: ``fn`` returns the message, or (message, id of the element to return
    to). A :class:`ReviewError` (wrong code, not pending, …) is shown as an error in
    the card of the form's ``anchor`` field instead; :class:`AlreadyDone` (the action
    repeated) as done; :class:`NotConfirmed` (written, no replica confirmed it) as a
    warning asking to check and repeat."""
    def wrap(fn: Action) -> Callable[[Request], Awaitable[Response]]:
        @wraps(fn)
        async def endpoint(request: Request) -> Response:
            form = await request.form()
            who = staff(request)
            if not same_token(form.get("csrf"), who.csrf):
                return forbidden(request, "フォームの有効期限が切れたか、不正な送信です。"
                                          "ページを読み込み直してから、もう一度操作してください。")
            target = page_of(safe_next(form.get("next"), default_next))
            try:
                done = await fn(request, form, who)
                text, anchor = done if isinstance(done, tuple) else (done, "")
                flash(request, "ok", text, anchor)
            except AlreadyDone as e:  # at the top: the row acted on is gone from its list
                anchor = ""
                flash(request, "ok", error_ja(e))
            except ReviewError as e:
                anchor = text_field(form, "anchor", 200)
                flash(request, "error", error_ja(e), anchor)
            except NotConfirmed:  # at the top too: the action was written, its row is gone
                anchor = ""
                flash(request, "warn", NOT_CONFIRMED_JA)
            return RedirectResponse(target + (f"#{quote(anchor)}" if anchor else ""),
                                    status_code=303)
        endpoint.is_action = True  # type: ignore[attr-defined]
        return endpoint
    return wrap


def text_field(form: FormData, name: str, limit: int = 500) -> str:
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    # one line of plain text for the audit log: control characters become spaces
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value).strip()[:limit]


def login_url(path: str, query: str = "", lost: bool = False) -> str:
    """The login page, coming back to ``path?query`` afterwards (a deep link keeps its
    query string); ``lost``: a form was sent after the session ended."""
    params = {}
    if path not in ("/", "/login"):
        params["next"] = path + ("?" + query if query else "")
    if lost:
        params["lost"] = "1"
    return "/login" + ("?" + urlencode(params) if params else "")


# the page each form is on: where a POST-only URL leads back to
FORM_PAGES = {"/pending/": "/pending", "/calls/": "/calls", "/failures/": "/failures",
              "/logout": "/"}


def page_of(path: str) -> str:
    """``path`` itself when a page, else the page of the form that posts to it."""
    bare = path.split("?", 1)[0].split("#", 1)[0]
    for prefix, page in FORM_PAGES.items():
        if bare.startswith(prefix) or bare == prefix:
            return page
    return path


def form_page(request: Request) -> str:
    """The page a POSTed form was on: its same-site Referer, else the action's page."""
    ref = request.headers.get("referer") or ""
    origin = f"{request.url.scheme}://{request.url.netloc}"
    if ref.startswith(origin + "/"):
        return page_of(safe_next(ref[len(origin):], page_of(request.url.path)))
    return page_of(request.url.path)
