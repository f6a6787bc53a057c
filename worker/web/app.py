"""The Starlette application: sessions, the login wall, security headers, the pages."""

from __future__ import annotations

import logging
import secrets
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import StoreError
from ..settings import Settings
from ..store.client import REDIS_UNREACHABLE
from ..store.connect import describe
from ..store.core import Store
from .auth import Accounts
from .base import TEMPLATES, form_page, login_url, make_env, render
from .routes import calls, failures, home, login, patron, pending, rejected, stats

log = logging.getLogger(__name__)

PUBLIC = ("/login", "/static/")
# what makes a page "Redis is unreachable" rather than an error
UNREACHABLE: tuple[type[Exception], ...] = (StoreError, OSError, *REDIS_UNREACHABLE)
COOKIE = "omitama_staff"
HEADERS = [
    # no script at all runs on these pages; styles only from us
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self'; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class LoginWall:
    """Nothing but the login page and the stylesheet without a live session; the
    staff member is put on ``request.state.staff`` for everything else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in HEADERS if k not in names]
            await send(message)

        path = scope["path"]
        accounts = Accounts(scope["app"].state.store, scope["app"].state.settings.web)
        try:
            staff = await accounts.session(scope["session"].get("sid"))
        except UNREACHABLE as e:
            scope.setdefault("state", {})["staff"] = None
            await (await store_unreachable(Request(scope), e))(scope, receive, send_with_headers)
            return
        scope.setdefault("state", {})["staff"] = staff
        if staff is None and not path.startswith(PUBLIC):
            scope["session"].pop("sid", None)
            request = Request(scope)
            if scope["method"] in ("GET", "HEAD"):
                target = login_url(path, request.url.query)
            else:
                # a form sent after the session ended: back to the page the form was on
                # (never to the POST-only URL), saying that nothing was done
                target = login_url(form_page(request), lost=True)
            response: Response = RedirectResponse(target, status_code=303)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class ErrorPage:
    """The last net: an error nothing else handled is logged with its traceback and
    shown as a Japanese page with a way back, never Starlette's bare "Internal Server
    Error" (and not raised on to the server, which would log it a second time)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)
        try:
            await self.app(scope, receive, watching)
        except Exception:  # noqa: BLE001 - the one place every other error ends up
            log.exception("staff web: unexpected error on %s %s", scope.get("method"),
                          scope.get("path"))
            if started:
                raise  # the page was half sent: nothing better to do than cut it
            env = scope["app"].state.jinja
            html = env.get_template("error.html").render(
                staff=None, csrf="", flash=None, branches={}, path=scope.get("path"),
                title=ERRORS[500][0], message=ERRORS[500][1])
            await HTMLResponse(html, status_code=500, headers=dict(
                (k.decode(), v.decode()) for k, v in HEADERS))(scope, receive, send)


# what staff read for an HTTP error: (heading, what to do); others get 400's wording
ERRORS = {
    404: ("ページが見つかりません", "このアドレスのページはありません。"
                                 "ブックマークやアドレスが古い可能性があります。"),
    405: ("このアドレスは開けません", "このアドレスはボタンで操作するためのものです。"
                                  "元のページを開き直してから操作してください。"),
    500: ("エラーが発生しました", "予期しないエラーのため、表示または操作ができませんでした。"
                               "もう一度お試しください。続くときはシステム担当にご連絡ください"
                               "(詳しい内容はサーバーの記録にあります)。"),
    400: ("リクエストを処理できません", "送られた内容を読み取れませんでした。"
                                     "ページを読み込み直してから、もう一度操作してください。"),
}


async def http_error(request: Request, exc: Exception) -> Response:
    code = exc.status_code if isinstance(exc, HTTPException) else 500
    title, message = ERRORS.get(code, ERRORS[400] if code < 500 else ERRORS[500])
    return render(request, "error.html", status_code=code, title=title, message=message,
                  headers=getattr(exc, "headers", None))


async def store_unreachable(request: Request, exc: Exception) -> Response:
    log.error("staff web: Redis: %s", exc)
    return render(request, "error.html", status_code=503, title="データベースに接続できません",
                  message="Redis に接続できません。システム担当にご連絡ください。"
                          f"({describe(request.app.state.settings.redis)})")


def routes() -> list[Any]:
    return [
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login", login.login_submit, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/", home.home, methods=["GET"]),
        Route("/pending", pending.page, methods=["GET"]),
        Route("/pending/approve", pending.approve_with_code, methods=["POST"]),
        Route("/pending/approve-without-code", pending.approve_without_code, methods=["POST"]),
        Route("/pending/reject", pending.reject, methods=["POST"]),
        Route("/calls", calls.page, methods=["GET"]),
        Route("/calls/print", calls.printable, methods=["GET"]),
        Route("/calls/called", calls.called, methods=["POST"]),
        Route("/calls/uncall", calls.uncall, methods=["POST"]),
        Route("/failures", failures.page, methods=["GET"]),
        Route("/failures/reenable", failures.reenable, methods=["POST"]),
        Route("/failures/remove", failures.remove, methods=["POST"]),
        Route("/failures/sender-fixed", failures.sender_fixed, methods=["POST"]),
        Route("/rejected", rejected.page, methods=["GET"]),
        Route("/patron", patron.page, methods=["GET"]),
        Route("/stats", stats.page, methods=["GET"]),
        Route("/stats/csv", stats.csv, methods=["GET"]),
        Mount("/static", StaticFiles(directory=TEMPLATES.parent / "static"), name="static"),
    ]


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The staff web page. ``store`` defaults to one connected from ``[redis]`` at startup."""
    secret = settings.web.session_secret.get_secret_value() or secrets.token_urlsafe(32)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = store is None
        app.state.store = store or Store.from_settings(settings)
        try:
            yield
        finally:
            if own:
                await app.state.store.close()

    app = Starlette(
        routes=routes(), lifespan=lifespan,
        middleware=[
            Middleware(ErrorPage),
            # max_age=None: a browser-session cookie (closing the browser on a shared
            # counter PC ends it); the server-side session keeps its own expiry
            Middleware(SessionMiddleware, secret_key=secret, session_cookie=COOKIE,
                       max_age=None, same_site="lax",
                       https_only=settings.web.secure_cookies),
            Middleware(LoginWall),
        ],
        exception_handlers={HTTPException: http_error, StoreError: store_unreachable,
                            **{e: store_unreachable for e in REDIS_UNREACHABLE}})
    app.state.settings = settings
    app.state.jinja = make_env()
    return app
