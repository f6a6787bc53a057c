"""The staff web page over HTTP (Starlette's TestClient), against the real Redis.

Data is made by the worker's own functions (registration, hold notices to the
phone-call list, failures); staff act through the pages, and the audit log must
carry the staff id of the session, never one from a form field.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from tests.helpers import hold_event, runtime_do, variant, with_store
from tests.helpers import set_contact
from worker.contact import ContactState
from worker.web.app import create_app
from worker.web.auth import Accounts

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "kasidasi-2026"


@pytest.fixture
def s(settings, clean_redis, tmp_path):
    return variant(settings, mail={"outbox_dir": tmp_path / "out"},
                   web={"login_max_failures": 3, "login_window_s": 600})


def add_staff(s, staff_id: str = "S01", branch: str | None = None, password: str = PASSWORD):
    with_store(s, lambda st: Accounts(st, s.web).add(staff_id, password, branch))


def client_for(s, addr: str = "testclient") -> TestClient:
    return TestClient(create_app(s), follow_redirects=False, client=(addr, 50000))


@pytest.fixture
def web(s):
    with client_for(s) as c:
        yield c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html)[1]


def login(c: TestClient, staff_id: str = "S01", password: str = PASSWORD, next_path: str = "/"):
    page = c.get("/login")
    return c.post("/login", data={"csrf": csrf_of(page.text), "staff_id": staff_id,
                                  "password": password, "next": next_path})


def logged_in(s, web, staff_id: str = "S01", branch: str | None = None) -> str:
    add_staff(s, staff_id, branch)
    r = login(web, staff_id)
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return csrf_of(web.get("/").text)


def act(web, path: str, **form):
    """POST a form with the session's CSRF token; returns the page redirected to. A form
    of the pending page carries the registration its row shows, as the browser sends it."""
    token = csrf_of(web.get("/").text)
    if path.startswith("/pending/") and "card" in form and "registration" not in form:
        shown = shown_registration(web, form["card"])
        if shown:
            form["registration"] = shown
    r = web.post(path, data={"csrf": token, **form})
    assert r.status_code == 303, r.text
    return web.get(r.headers["location"])


def shown_registration(web, card: str) -> str | None:
    """The registration id the pending page's row for ``card`` carries in its forms."""
    page = web.get("/pending").text
    if f'id="pending-{card}"' not in page:
        return None
    row = page[page.index(f'id="pending-{card}"'):]
    m = re.search(r'name="registration" value="([^"]*)"', row[:row.index("</article>")])
    return m[1] if m else None


def flash(page) -> str:
    m = re.search(r'<p class="flash (\w+)"[^>]*>(.*?)</p>', page.text, re.S)
    return f"{m[1]}: {m[2]}" if m else ""


# -- data, made by the worker's own functions -------------------------------------

def register(s, card: str, address: str, branch: str = "ogawa", event_id: str = "") -> str:
    """address_registered handled by the worker's function; returns the mailed code."""
    from worker.app import registration
    from worker.ils.events import parse_event

    ev = parse_event({"event_id": event_id or f"reg-{card}", "type": "address_registered",
                      "card_number": card, "email": address,
                      "registered_at": "2026-11-29T09:30:00+09:00",
                      "application_branch": branch}, set(s.branches))
    assert runtime_do(s, lambda rt: registration.register(rt, ev)) == "sent"
    for f in sorted(s.outbox_dir.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
        msg = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        if msg["To"].addresses[0].addr_spec == address:
            return re.search(r"^(\d{6})$", msg.get_content(), re.M)[1]
    raise AssertionError("no confirmation mail")


def on_call_list(s, hold_id: str, card: str, **over):
    from worker.app import holds
    from worker.ils.events import parse_event

    ev = parse_event(hold_event(hold_id, card, **{"contact": "phone", **over}), set(s.branches))
    runtime_do(s, lambda rt: holds.notify_hold_ready(rt, ev))


def history(s, card: str) -> list[dict]:
    return with_store(s, lambda st: st.history(card))


def patron(s, card: str) -> dict:
    return with_store(s, lambda st: st.r.hgetall(st.k.patron(card)))


# -- the login wall -----------------------------------------------------------------

def _routes(app):
    return [(m, r.path) for r in app.routes if isinstance(r, Route)
            for m in sorted(r.methods or ()) if m != "HEAD"]


def test_nothing_is_reachable_without_logging_in(s, web):
    routes = _routes(web.app)
    assert ("GET", "/pending") in routes and ("POST", "/failures/reenable") in routes
    for method, path in routes + [("GET", "/no-such-page"), ("GET", "/patron?card=C1")]:
        if path == "/login":
            continue
        r = web.request(method, path, data={"card": "C1", "staff": "S01"} if method == "POST" else None)
        assert r.status_code == 303, (method, path)
        assert r.headers["location"].startswith("/login"), (method, path)
    assert web.get("/login").status_code == 200
    assert web.get("/static/style.css").status_code == 200


def test_login_logout_and_the_session_dies_with_logout(s, web):
    add_staff(s, "S01")
    r = login(web, "S01", "wrong-password")
    assert r.status_code == 401 and "職員IDまたはパスワードが違います" in r.text
    r = login(web, "nobody", PASSWORD)
    assert r.status_code == 401
    r = login(web, "S01")
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    home = web.get("/")
    assert home.status_code == 200 and "S01" in home.text and "今日の確認事項" in home.text
    stolen = dict(web.cookies)
    # logout without the token is refused; with it, the server forgets the session
    assert web.post("/logout", data={}).status_code == 403
    r = web.post("/logout", data={"csrf": csrf_of(home.text)})
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert "ログアウトしました" in web.get("/login").text
    assert web.get("/").status_code == 303
    with client_for(s) as other:
        other.cookies.update(stolen)
        assert other.get("/").status_code == 303  # a copied cookie is worthless after logout


def test_behind_a_tls_proxy_the_session_cookie_is_secure(s):
    add_staff(s, "S01")
    assert "secure" not in login_cookie(s, "http://testserver").lower()  # the default: plain HTTP
    secure = variant(s, web={"secure_cookies": True})
    cookie = login_cookie(secure, "https://testserver").lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie


def login_cookie(s, base_url: str) -> str:
    with TestClient(create_app(s), follow_redirects=False, base_url=base_url) as c:
        r = login(c)
        assert r.status_code == 303, r.text
        return r.headers["set-cookie"]


def test_login_goes_back_to_the_page_asked_for_with_its_query_but_never_off_site(s, web):
    add_staff(s, "S01")
    r = web.get("/calls?branch=ogawa")  # a deep link keeps its query string through login
    assert r.headers["location"] == "/login?next=%2Fcalls%3Fbranch%3Dogawa"
    page = web.get(r.headers["location"])
    assert 'name="next" value="/calls?branch=ogawa"' in page.text
    assert login(web, "S01", next_path="/calls?branch=ogawa").headers["location"] == \
        "/calls?branch=ogawa"
    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        with client_for(s) as c:
            assert login(c, "S01", next_path=evil).headers["location"] == "/"
    with client_for(s) as c:  # never back to a POST-only URL (a bare 405 page)
        assert login(c, "S01", next_path="/pending/approve").headers["location"] == "/pending"


def test_a_form_sent_after_the_session_ended_leads_back_to_its_page_with_a_message(s, web):
    logged_in(s, web)
    register(s, "C1", "taro@docomo.ne.jp")
    page = web.get("/pending?branch=ogawa")
    token = csrf_of(page.text)
    with_store(s, lambda st: Accounts(st, s.web).logout_all("S01"))  # e.g. another tab
    r = web.post("/pending/approve", data={"csrf": token, "card": "C1", "code": "123456"},
                 headers={"referer": "http://testserver/pending?branch=ogawa"})
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fpending%3Fbranch%3Dogawa&lost=1"
    form = web.get(r.headers["location"])
    assert "直前の操作は行われていません" in form.text and 'name="lost" value="1"' in form.text
    csrf = csrf_of(form.text)
    r = web.post("/login", data={"csrf": csrf, "staff_id": "S01", "password": PASSWORD,
                                 "next": "/pending?branch=ogawa", "lost": "1"})
    assert r.headers["location"] == "/pending?branch=ogawa"
    back = web.get(r.headers["location"])
    assert back.status_code == 200 and "もう一度入力してください" in flash(back)
    assert patron(s, "C1")["state"] == "pending"  # nothing was done
    # no Referer (a privacy setting): the page of the action all the same
    web.cookies.clear()
    r = web.post("/calls/called", data={"hold_id": "H1"})
    assert r.headers["location"] == "/login?next=%2Fcalls&lost=1"


def test_login_needs_its_csrf_token_and_a_tampered_cookie_is_refused(s, web):
    add_staff(s, "S01")
    r = web.post("/login", data={"staff_id": "S01", "password": PASSWORD})
    assert r.status_code == 403
    login(web, "S01")
    assert web.get("/").status_code == 200
    name, value = next(iter(web.cookies.items()))
    web.cookies.clear()
    web.cookies.set(name, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
    assert web.get("/").status_code == 303


def test_security_headers(s, web):
    r = web.get("/login")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # no script may run
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


def test_a_prankster_cannot_lock_a_colleague_out_of_her_own_counter_pc(s):
    add_staff(s, "S01")
    add_staff(s, "S02")
    with client_for(s, "10.0.0.1") as counter:  # S01's counter PC: logged in before
        assert login(counter, "S01").status_code == 303
    with client_for(s, "10.0.0.66") as prank:
        for _ in range(3):
            assert login(prank, "S01", "wrong-password").status_code == 401
        r = login(prank, "S01")  # the right password, but this client is refused now
        assert r.status_code == 429 and "この端末からのログインの失敗が続いた" in r.text
        assert login(prank, "S02").status_code == 303  # its other ids are fine (3 < 20)
    with client_for(s, "10.0.0.1") as counter:
        r = login(counter, "S01")  # not locked out: S01 logs in at her counter
        assert r.status_code == 303
        # … and is told that someone typed wrong passwords for her id
        assert "3回パスワードが間違って入力されました" in flash(counter.get("/"))
        assert "パスワードが間違って" not in flash(counter.get("/"))  # told once


def test_a_known_client_is_slowed_down_never_refused(s):
    add_staff(s, "S01")
    with client_for(s, "10.0.0.1") as c:
        assert login(c, "S01").status_code == 303
    with client_for(s, "10.0.0.1") as c:
        for _ in range(3):
            assert login(c, "S01", "wrong-password").status_code == 401
        r = login(c, "S01")
        assert r.status_code == 429 and "1秒お待ちいただいてから" in r.text
        wait = with_store(s, lambda st: st.r.pttl(st.k.login_wait("10.0.0.1/S01")))
        assert 0 < wait <= 1000
        with_store(s, lambda st: st.r.delete(st.k.login_wait("10.0.0.1/S01")))  # a second later
        assert login(c, "S01").status_code == 303


def test_the_ceilings_per_client_and_per_id(s):
    s = variant(s, web={"login_max_failures_per_client": 4, "login_max_failures_per_id": 5})
    for sid in ("S01", "S02", "S03"):
        add_staff(s, sid)
    with client_for(s, "10.0.0.3") as c:  # one client guessing many ids
        for i in range(4):
            assert login(c, f"X{i}", "guess").status_code == 401
        assert login(c, "S03").status_code == 429
    for n in range(5):  # many clients guessing one id: the id's ceiling
        with client_for(s, f"10.1.0.{n}") as c:
            assert login(c, "S01", "guess").status_code == 401
    with client_for(s, "10.2.0.1") as c:
        r = login(c, "S01")
        assert r.status_code == 429 and "初めての端末からは" in r.text
    ttl = with_store(s, lambda st: st.r.ttl(st.k.login_failures("staff", "S01")))
    assert 0 < ttl <= 600
    # a good login resets the id's counter, never the client's
    with_store(s, lambda st: st.r.sadd(st.k.login_known("S02"), "10.0.0.3"))
    with client_for(s, "10.0.0.3") as c:
        assert login(c, "S02").status_code == 303
    with client_for(s, "10.0.0.3") as c:
        assert login(c, "S03").status_code == 429


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy(s):
    add_staff(s, "S01")

    def fail_from(settings, peer, xff):
        with client_for(settings, peer) as c:
            page = c.get("/login")
            c.post("/login", data={"csrf": csrf_of(page.text), "staff_id": "S01",
                                   "password": "wrong-password"},
                   headers={"x-forwarded-for": xff})

    fail_from(s, "127.0.0.1", "203.0.113.9")  # the default: no proxy is trusted
    count = lambda who: with_store(s, lambda st: st.r.get(st.k.login_failures("addr", who)))
    assert count("127.0.0.1") == "1" and count("203.0.113.9") is None
    behind = variant(s, web={"trusted_proxies": ["127.0.0.1"]})
    fail_from(behind, "127.0.0.1", "198.51.100.7, 203.0.113.9")  # the proxy appends the peer
    assert count("203.0.113.9") == "1" and count("127.0.0.1") == "1"
    fail_from(behind, "10.9.9.9", "203.0.113.77")  # not from the proxy: the header is ignored
    assert count("10.9.9.9") == "1" and count("203.0.113.77") is None


def test_a_password_change_or_removal_ends_every_session_for_good(s):
    add_staff(s, "S03")
    with client_for(s) as c, client_for(s) as d:
        login(c, "S03")
        login(d, "S03")
        stolen = dict(c.cookies)
        assert "sessions 2" in cli("staff", "list").stdout
        r = cli("staff", "passwd", "S03", "--password-stdin", stdin="another-password\n")
        assert r.returncode == 0 and "sessions have ended" in r.stdout, r.stderr
        assert c.get("/").status_code == 303 and d.get("/").status_code == 303
        login(c, "S03", "another-password")
        stolen = dict(c.cookies)
    assert cli("staff", "remove", "S03").returncode == 0
    add_staff(s, "S03", password="a-third-password")  # the same id again
    with client_for(s) as e:
        e.cookies.update(stolen)
        assert e.get("/").status_code == 303  # the old cookie does not come back
    assert "S03  -  created" in cli("staff", "list").stdout


def test_staff_logout_all_ends_the_sessions_of_one_account(s):
    add_staff(s, "S01")
    add_staff(s, "S02")
    with client_for(s) as a, client_for(s) as b:
        login(a, "S01")
        login(b, "S02")
        r = cli("staff", "logout-all", "S01")
        assert r.returncode == 0 and "1 session(s) ended" in r.stdout, r.stderr
        assert a.get("/").status_code == 303 and b.get("/").status_code == 200
        listing = cli("staff", "list").stdout
        assert "S01  -  created" in listing and "sessions 0" in listing and "sessions 1" in listing
        assert login(a, "S01").status_code == 303  # a new login works at once
    none = cli("staff", "logout-all", "S99")
    assert none.returncode == 1 and "no staff account S99" in none.stderr
    assert ("S01", "logged out everywhere") in [
        (e["staff_id"], e["what"]) for e in with_store(s, lambda st: Accounts(st, s.web).log())]


def test_the_cookie_ends_with_the_browser_and_the_session_when_idle(s, web):
    add_staff(s, "S01")
    r = login(web, "S01")
    cookie = r.headers["set-cookie"].lower()
    assert "max-age" not in cookie and "expires" not in cookie  # a browser-session cookie
    sid = next(iter(with_store(s, lambda st: st.r.smembers(st.k.staff_sessions("S01")))))
    ttl = with_store(s, lambda st: st.r.ttl(st.k.web_session(sid)))
    assert s.web.session_max_age_s - 60 < ttl <= s.web.session_max_age_s  # kept server-side
    assert web.get("/").status_code == 200
    idle_ms = (s.web.session_idle_s + 1) * 1000
    with_store(s, lambda st: st.r.hincrby(st.k.web_session(sid), "seen_ms", -idle_ms))
    assert web.get("/").status_code == 303
    assert not with_store(s, lambda st: st.r.exists(st.k.web_session(sid)))


def test_every_action_refuses_a_post_without_the_csrf_token(s, web):
    logged_in(s, web)
    register(s, "C1", "taro@docomo.ne.jp")
    on_call_list(s, "H1", "C1")
    with_store(s, lambda st: set_contact(st, "C2", ContactState.SUSPENDED,
                                            address="x@ezweb.ne.jp"))
    actions = [p for m, p in _routes(web.app) if m == "POST" and p != "/login"]
    assert len(actions) == 9
    form = {"card": "C1", "code": "123456", "reason": "r", "hold_id": "H1", "note": "n"}
    for path in actions:
        assert web.post(path, data=form).status_code == 403, path
        assert web.post(path, data={**form, "csrf": "forged"}).status_code == 403, path
    assert patron(s, "C1")["state"] == "pending" and patron(s, "C2")["state"] == "suspended"
    assert [c["hold_id"] for c in with_store(s, lambda st: st.calls())] == ["H1"]
    assert web.get("/").status_code == 200  # still logged in


# -- pages and actions ------------------------------------------------------------------

def test_pending_page_approve_with_the_code(s, web):
    logged_in(s, web, "S01", branch="tamari")
    code = register(s, "C1", "taro@docomo.co.jp", "ogawa")  # a typo the page should flag
    register(s, "C2", "hana@docomo.ne.jp", "tamari")
    page = web.get("/pending")
    assert page.status_code == 200
    text = page.text
    assert text.index("玉里") < text.index("小川")  # the staff member's own branch first
    assert "taro@docomo.co.jp" in text and "taro@docomo.ne.jp" in text  # typo hint
    card = text[text.index('id="pending-C1"'):]
    assert '<span class="tag warn">ドコモの入力ミス?</span>' in card[:card.index("</article>")]
    assert "携帯会社以外" not in card[:card.index("</article>")]  # the tag agrees with the hint
    assert "ドコモ" in text and "電話で伝えること" in text and "受信リスト" in text
    only = web.get("/pending?branch=ogawa").text
    assert "taro@docomo.co.jp" in only and "hana@docomo.ne.jp" not in only
    wrong = "000000" if code != "000000" else "111111"
    page = act(web, "/pending/approve", card="C1", code=wrong, staff="EVIL")
    assert "受付番号が違います。あと 4 回" in flash(page)
    page = act(web, "/pending/approve", card="C1", code="12345")
    assert "6桁" in flash(page)
    full_width = code.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    page = act(web, "/pending/approve", card="C1", code=full_width, staff="EVIL")
    assert flash(page).startswith("ok:") and "承認しました" in flash(page)
    assert patron(s, "C1")["state"] == "active"
    last = history(s, "C1")[-1]
    assert last["staff"] == "S01" and "code checked" in last["what"]
    page = act(web, "/pending/approve", card="C1", code=code)  # sent again: done already
    assert flash(page) == "ok: カード C1 のこの登録は既に承認済みです。何も変更していません。"
    assert [h["kind"] for h in history(s, "C1")].count("approved") == 1


def test_a_stale_page_approves_and_rejects_nothing_the_patron_registered_since(s, web):
    """Issue 24 #1: staff saw address A; the patron registered B meanwhile. Every action
    of A's row (with A's code, without a code, reject) leaves B pending and says why."""
    from worker.masking import mask_address

    logged_in(s, web)
    first_code = register(s, "C1", "taro@docomo.ne.jp")
    shown = shown_registration(web, "C1")
    assert shown == "reg-C1"
    register(s, "C1", "jiro@docomo.ne.jp", event_id="reg-C1-again")
    for path, extra in (("/pending/approve-without-code", {"reason": "来館され本人確認済み"}),
                        ("/pending/reject", {"reason": "本人と連絡がつかない"}),
                        ("/pending/approve", {"code": first_code})):
        page = act(web, path, card="C1", registration=shown, **extra)
        assert flash(page).startswith("error:") and "別のメールアドレスを登録しました" in flash(page)
        assert "読み込み直して" in flash(page), flash(page)
    p = patron(s, "C1")
    assert p["state"] == "pending" and p["pending_address"] == "jiro@docomo.ne.jp"
    assert p["code_wrong"] == "0"
    assert [h["kind"] for h in history(s, "C1")] == ["registered", "registered"]
    # reloaded, the row shows B: approving it works, and the audit names B (masked)
    page = act(web, "/pending/approve-without-code", card="C1", reason="来館され本人確認済み")
    assert flash(page).startswith("ok:") and "jiro@docomo.ne.jp" in flash(page)
    last = history(s, "C1")[-1]
    assert last["kind"] == "approved_without_code" and last["code_read"] is False
    assert last["address"] == mask_address("jiro@docomo.ne.jp") and "jiro" not in last["address"]
    assert last["registration"] == "reg-C1-again"
    assert patron(s, "C1")["address"] == "jiro@docomo.ne.jp"


def test_pending_approve_without_code_and_reject_need_a_reason(s, web):
    logged_in(s, web)
    register(s, "C1", "a@example.jp")
    register(s, "C2", "b@example.jp")
    assert "理由が必要" in flash(act(web, "/pending/approve-without-code", card="C1", reason=" "))
    assert "理由が必要" in flash(act(web, "/pending/reject", card="C2", reason=""))
    page = act(web, "/pending/approve-without-code", card="C1", reason="来館され本人確認済み",
               staff="EVIL")
    assert "受付番号なしで承認" in flash(page)
    page = act(web, "/pending/reject", card="C2", reason="本人と連絡がつかない", staff="EVIL")
    assert "却下しました" in flash(page) and "未登録" in flash(page)
    h1, h2 = history(s, "C1")[-1], history(s, "C2")[-1]
    assert h1["staff"] == "S01" and "WITHOUT the code" in h1["what"] and h1["why"] == "来館され本人確認済み"
    assert h2["staff"] == "S01" and h2["what"] == "registration rejected"
    assert "承認待ちはありません" in web.get("/pending").text


def test_calls_page_escapes_titles_and_marks_a_call(s, web):
    logged_in(s, web, "S07", branch="minori")
    on_call_list(s, "H1", "C1", pickup_branch="ogawa", pickup_by="2099-12-01",
                 item={"title": "<script>alert(1)</script>の本", "material": "book"})
    on_call_list(s, "H2", "C2", pickup_branch="minori", contact="email")
    page = web.get("/calls")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;の本" in page.text
    assert "<script>" not in page.text
    assert page.text.index("美野里") < page.text.index("小川")
    assert "電話連絡を希望" in page.text and "メールアドレス未登録" in page.text
    assert "12月1日(火)" in page.text
    assert "H2" not in web.get("/calls?branch=ogawa").text
    page = act(web, "/calls/called", hold_id="H1", note="留守電に伝言", staff="EVIL",
               next="/calls?branch=ogawa")
    assert page.url.path == "/calls" and "連絡済みにしました" in flash(page)
    assert [c["hold_id"] for c in with_store(s, lambda st: st.calls())] == ["H2"]
    last = history(s, "C1")[-1]
    assert last["staff"] == "S07" and last["why"] == "留守電に伝言"
    # pressed again (issue 19: safe to repeat): done already, not an error
    assert flash(act(web, "/calls/called", hold_id="H1")) == \
        "ok: 予約 H1 は既に連絡済みです。何も変更していません。"
    assert "電話連絡リストにありません" in flash(act(web, "/calls/called", hold_id="H404"))


def _failure(s, card: str, address: str):
    """An approved address whose mail was refused by the patron's filter, then suspended."""
    from worker.masking import mask_address
    from worker.bounces.failures import advice_for

    with_store(s, lambda st: st.add_failure({
        "card_number": card, "hold_id": "H9", "reason": "filtered", "permanent": True,
        "misconfigured_recipient": True, "status": "5.7.1",
        "diagnostic": f"550 5.7.1 <{address}>: Message rejected due to filtering",
        "advice": advice_for("filtered", True, address), "address": mask_address(address),
        "source": "smtp"}))
    with_store(s, lambda st: set_contact(st, card, ContactState.SUSPENDED, address=address, why="filtered: test"))


def test_failures_page_reenable_and_remove(s, web):
    logged_in(s, web, "S03")
    _failure(s, "C1", "taro@docomo.ne.jp")
    _failure(s, "C2", "jiro@ezweb.ne.jp")
    page = web.get("/failures")
    assert page.status_code == 200
    assert "詳しい情報" in page.text and "550 5.7.1" in page.text
    assert "利用者に伝えること" in page.text and "lib@city.omitama.ibaraki.jp" in page.text
    assert page.text.count('class="primary">メール再開') == 2
    assert "再開するには理由" in flash(act(web, "/failures/reenable", card="C1", reason=""))
    page = act(web, "/failures/reenable", card="C1", reason="受信リストに登録したと電話あり",
               staff="EVIL")
    assert "再開しました" in flash(page)
    assert patron(s, "C1")["state"] == "active"
    assert "既に使える状態です" in flash(act(web, "/failures/reenable", card="C1", reason="x"))
    page = act(web, "/failures/remove", card="C2", reason="アドレス解約済み", staff="EVIL")
    assert "削除しました" in flash(page)
    assert patron(s, "C2")["state"] == "none"
    assert history(s, "C1")[-1]["staff"] == "S03" and history(s, "C2")[-1]["staff"] == "S03"
    assert history(s, "C2")[-1]["why"] == "アドレス解約済み"


def test_removing_the_address_of_a_card_that_has_none_is_refused(s, web):
    logged_in(s, web, "S03")
    page = act(web, "/failures/remove", card="C404", reason="アドレス解約済み")
    assert flash(page).startswith("error:") and "メールアドレスが登録されていません" in flash(page)
    assert history(s, "C404") == [] and patron(s, "C404") == {}  # no entry for a card that is not
    r = cli("review", "remove", "C404", "--staff", "S03", "--reason", "x")
    assert r.returncode == 1 and "has no e-mail address" in r.stderr


def test_rejected_events_page_escapes_the_raw_payload(s, web):
    logged_in(s, web)
    from worker.app.refusals import keep_refusal as reject
    with_store(s, lambda st: reject(st, {"event_id": "bad-1", "type": "hold_ready",
                                         "item": {"title": "<script>x()</script>"}},
                                    "item.material: Field required",
                                    event_id="bad-1", event_type="hold_ready"))
    page = web.get("/rejected")
    assert "bad-1" in page.text and "item.material: Field required" in page.text
    assert "&lt;script&gt;x()&lt;/script&gt;" in page.text and "<script>" not in page.text


def test_patron_page_and_home_counts(s, web):
    logged_in(s, web, "S01", branch="ogawa")
    register(s, "C1", "taro@docomo.ne.jp", "ogawa")
    register(s, "C2", "hana@ezweb.ne.jp", "minori")
    on_call_list(s, "H1", "C1")
    _failure(s, "C3", "x@softbank.ne.jp")
    home = web.get("/").text
    assert re.search(r'id="count-pending">2<', home) and "うち小川図書館 1件" in home
    assert re.search(r'id="count-calls">1<', home)
    assert re.search(r'id="count-failures">1<', home)
    page = web.get("/patron?card=C1")
    assert "承認待ち" in page.text and "taro@docomo.ne.jp" in page.text
    assert "H1" in page.text and "アドレス登録(本人からの電話待ち)" in page.text
    raw = patron(s, "C1")
    assert raw["code_hash"] not in page.text and raw["code_salt"] not in page.text
    assert "記録はありません" in web.get("/patron?card=NOPE").text
    assert web.get("/patron?card=<b>x</b>").text.count("<b>x</b>") == 0


def test_staff_web_shows_a_page_when_redis_is_down(s):
    down = variant(s, redis={"url": "redis://127.0.0.1:1/0"})
    with client_for(down) as c:
        page = c.get("/login")
        assert page.status_code == 200  # the form itself needs no Redis
        r = c.post("/login", data={"csrf": csrf_of(page.text), "staff_id": "S01",
                                   "password": PASSWORD})
        assert r.status_code == 503 and "Redis に接続できません" in r.text
        c.cookies.set("omitama_staff", "garbage")
        assert c.get("/calls").status_code in (303, 503)


# -- the staff command ----------------------------------------------------------------

def cli(*args: str, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ})


def test_staff_command_adds_changes_and_removes_accounts(s, web):
    r = cli("staff", "add", "S09", "--branch", "tamari", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.returncode == 0 and "staff account S09 created" in r.stdout, r.stderr
    stored = with_store(s, lambda st: st.r.hgetall(st.k.staff("S09")))
    assert stored["hash"].startswith("$argon2id$") and PASSWORD not in str(stored)
    again = cli("staff", "add", "S09", "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1 and "already exists" in again.stderr
    short = cli("staff", "add", "S10", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 8 characters" in short.stderr
    bad = cli("staff", "add", "S 1", "--password-stdin", stdin=PASSWORD + "\n")
    assert bad.returncode == 1 and "staff id" in bad.stderr
    assert cli("staff", "add", "S11", stdin="").returncode == 1  # no terminal, no --password-stdin
    assert "S09  tamari" in cli("staff", "list").stdout
    assert login(web, "S09").status_code == 303
    assert "玉里" in web.get("/").text
    r = cli("staff", "passwd", "S09", "--password-stdin", stdin="another-password\n")
    assert r.returncode == 0, r.stderr
    with client_for(s) as other:
        assert login(other, "S09").status_code == 401
        assert login(other, "S09", "another-password").status_code == 303
    assert cli("staff", "remove", "S09").returncode == 0
    assert web.get("/").status_code == 303  # the account is gone: so are its sessions
    assert cli("staff", "remove", "S09").returncode == 1
    # every change is in the account log, with who made it — and never a password or hash
    log = [json.loads(x) for x in cli("staff", "log", "--json").stdout.splitlines()]
    assert [(e["staff_id"], e["what"], e["branch"]) for e in log] == [
        ("S09", "created", "tamari"), ("S09", "password set", "tamari"), ("S09", "removed", "")]
    assert all(e["by"] and e["at"] for e in log)
    text = cli("staff", "log").stdout
    assert "S09  created (branch tamari)  by " in text and "S09  removed  by " in text
    assert not any(x in text for x in (PASSWORD, "another-password", "$argon2"))


def test_staff_web_command_serves_the_page_on_loopback(s):
    import httpx

    from tests.helpers import free_port, wait_for

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "staff-web"], cwd=ROOT,
                            env={**os.environ, "OMITAMA_NOTIFY_WEB__PORT": str(port)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up():
            try:
                return httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            except httpx.HTTPError:
                return None
        r = wait_for(up, timeout=20, interval=0.1)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert "職員ログイン" in httpx.get(f"http://127.0.0.1:{port}/login").text
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    assert f"staff web page: http://127.0.0.1:{port}/" in out


def test_staff_web_logs_at_info_in_the_workers_format(s):
    """Issue 23: staff-web logged through the CLI's ERROR-level "omitama-notify: …" lines;
    a long-running page logs like the worker: its line format, Tokyo time, INFO."""
    import re

    import httpx

    from tests.helpers import free_port, wait_for

    port, closed = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "staff-web"], cwd=ROOT,
                            env={**os.environ, "OMITAMA_NOTIFY_WEB__PORT": str(port),
                                 "OMITAMA_NOTIFY_REDIS__URL": f"redis://127.0.0.1:{closed}/0"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        web_client = httpx.Client(base_url=f"http://127.0.0.1:{port}")

        def up():
            try:
                return web_client.get("/login", timeout=1)
            except httpx.HTTPError:
                return None
        token = csrf_of(wait_for(up, timeout=20, interval=0.1).text)
        r = web_client.post("/login", data={"csrf": token, "staff_id": "S01", "password": "x"})
        assert r.status_code == 503  # Redis is away
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0]
    line = r"^\[20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00\] \[PID \d+\] \[[^]]+\] "
    lines = out.splitlines()
    assert any(re.match(line + r"\[uvicorn\.error\] \[INFO\] ", x) for x in lines), out
    assert any(re.match(line + r"\[worker\.web\.app\] \[ERROR\] staff web: Redis", x)
               for x in lines), out
    assert "omitama-notify: staff web" not in out


# -- no dead ends, screens that say the right thing (issue 15) -------------------------

def test_a_call_marked_by_mistake_is_undone_in_the_page_and_the_cli(s, web):
    logged_in(s, web, "S07")
    on_call_list(s, "H1", "C1", pickup_by="2099-12-01")
    on_call_list(s, "H2", "C2", pickup_by="2099-12-03")
    token = csrf_of(web.get("/calls").text)
    r = web.post("/calls/called", data={"csrf": token, "hold_id": "H1", "anchor": "call-H1",
                                        "next": "/calls"})
    assert r.headers["location"] == "/calls#called-H1"  # back at the hold, by its undo button
    page = web.get("/calls")
    assert 'id="called-H1"' in page.text and "取り消す" in page.text
    assert 'id="call-H1"' not in page.text and "連絡済みにしました" in page.text
    r = web.post("/calls/uncall", data={"csrf": token, "hold_id": "H1", "next": "/calls"})
    assert r.headers["location"] == "/calls#call-H1"
    assert "リストに戻しました" in flash(web.get("/calls"))
    assert [c["hold_id"] for c in with_store(s, lambda st: st.calls())] == ["H1", "H2"]
    assert "電話連絡済みを取り消し(予約 H1)" in web.get("/patron?card=C1").text
    assert [h["what"] for h in history(s, "C1")][-2:] == ["phoned about hold H1",
                                                           "call undone for hold H1"]
    assert history(s, "C1")[-1]["staff"] == "S07"
    page = act(web, "/calls/uncall", hold_id="H1", anchor="call-H1")  # undone already
    assert "予約 H1 は既に電話連絡リストに戻っています" in page.text  # shown in the hold's row
    page = act(web, "/calls/uncall", hold_id="H404", anchor="call-H1")
    assert "連絡済みではないため、取り消せません" in page.text
    # the CLI: mark, undo, and nothing to undo once the hold was picked up
    assert cli("review", "called", "H2", "--staff", "S08").returncode == 0
    r = cli("review", "uncall", "H2", "--staff", "S08", "--note", "押し間違い")
    assert r.returncode == 0 and "back on the phone-call list" in r.stdout, r.stderr
    assert history(s, "C2")[-1]["why"] == "押し間違い"
    assert cli("review", "called", "H2", "--staff", "S08").returncode == 0
    with_store(s, lambda st: st.close_hold("H2", "picked_up", 3600))
    r = cli("review", "uncall", "H2", "--staff", "S08")
    assert r.returncode == 1 and "not marked as phoned" in r.stderr
    assert [c["hold_id"] for c in with_store(s, lambda st: st.calls())] == ["H1"]


def test_an_action_returns_to_the_card_it_was_about(s, web):
    logged_in(s, web)
    register(s, "C1", "taro@docomo.ne.jp")
    token = csrf_of(web.get("/pending").text)
    r = web.post("/pending/approve", data={"csrf": token, "card": "C1", "code": "12",
                                           "anchor": "pending-C1", "next": "/pending?branch=ogawa"})
    assert r.headers["location"] == "/pending?branch=ogawa#pending-C1"
    page = web.get("/pending?branch=ogawa").text
    card = page[page.index('id="pending-C1"'):]
    assert card.index("6桁") < card.index("</article>")  # the message is in the card


def test_the_call_list_says_a_reason_that_is_still_true(s, web):
    logged_in(s, web)
    code = register(s, "C1", "taro@docomo.ne.jp")
    on_call_list(s, "H1", "C1", contact="email")  # listed: approval pending
    assert "承認待ち" in web.get("/calls").text
    act(web, "/pending/approve", card="C1", code=code)
    page = web.get("/calls").text
    assert "その後承認済み" in page and "山田 太郎" in page


def test_failures_handled_orphaned_and_a_mailbox_that_does_not_exist(s, web):
    logged_in(s, web, "S03")
    _failure(s, "C1", "taro.full.address@docomo.ne.jp")
    with_store(s, lambda st: st.add_failure({"card_number": None, "reason": "userunknown",
                                             "permanent": True, "diagnostic": "550 no card",
                                             "advice": "x", "address": "n***@example.jp"}))
    page = web.get("/failures").text
    assert "taro.full.address@docomo.ne.jp" in page  # the full address, to read back
    assert "特定できませんでした" in page and "対応待ち 1件" in page
    assert re.search(r'id="count-failures">1<', web.get("/").text)
    act(web, "/failures/reenable", card="C1", reason="受信設定を直したと電話あり")
    page = web.get("/failures").text
    assert 'class="tag done">対応済み' in page and "対応待ち 0件" in page
    assert "利用者に伝えること" not in page  # no advice left for a handled failure
    assert re.search(r'id="count-failures">0<', web.get("/").text)
    from worker.bounces.failures import advice_for
    with_store(s, lambda st: st.add_failure({
        "card_number": "C2", "reason": "userunknown", "permanent": True,
        "diagnostic": "550 5.1.1 user unknown", "advice": advice_for("userunknown", False, None)}))
    with_store(s, lambda st: set_contact(st, "C2", ContactState.SUSPENDED, address="no@au.com"))
    page = web.get("/failures").text
    card = page[page.index('id="failure-C2-1"'):]
    card = card[:card.index("</article>")]
    assert '<button type="submit">メール再開' in card and "存在しないため" in card
    assert 'class="primary"' not in card


def test_everything_staff_read_is_japanese(s, web):
    logged_in(s, web)
    with_store(s, lambda st: set_contact(st, "C1", ContactState.ACTIVE, address="a@au.com"))
    from worker.app import suspension
    with_store(s, lambda st: suspension.suspend(st, "C1", reason="userunknown",
                                                detail="userunknown: the address cannot be "
                                                       "found"))
    page = web.get("/patron?card=C1").text
    table = page[page.index("記録(新しい順)"):]
    assert "メール停止(不達)" in table and "自動処理" in table
    assert "メールアドレスが存在しない" in table
    assert ">worker<" not in table and ">userunknown: userunknown" not in table


def test_patron_search_accepts_full_width_digits(s, web):
    logged_in(s, web)
    register(s, "2100000003", "taro@docomo.ne.jp")
    page = web.get("/patron?card=２１０００００００３").text
    assert "カード 2100000003" in page and "taro@docomo.ne.jp" in page


def test_home_labels_what_it_counts_and_login_says_no_shell_command(s, web):
    logged_in(s, web)
    on_call_list(s, "H1", "C1")
    home = web.get("/").text
    assert "電話連絡リスト(全件)" in home and "今日の電話連絡" not in home
    assert re.search(r'id="count-calls-today">1<', home)
    web.cookies.clear()
    form = web.get("/login").text
    assert "omitama-notify" not in form and "<code>" not in form
    assert re.search(r'name="staff_id"[^>]*autofocus', form)
    add_staff(s, "S02")
    wrong = login(web, "S02", "wrong-password").text
    assert re.search(r'name="password"[^>]*autofocus', wrong)
    assert not re.search(r'name="staff_id"[^>]*autofocus', wrong)


def test_refused_events_say_why_in_japanese_from_the_error_kinds(s, web):
    logged_in(s, web)
    from worker.errors import EventError
    from worker.ils.events import parse_event
    from worker.app.refusals import keep_refusal as reject

    bad = [hold_event("R1", "C1", pickup_branch="mito"),
           {k: v for k, v in hold_event("R2", "C2").items() if k != "card_number"},
           hold_event("R3", "C3", pickup_by="12/20", ready_at="2026-11-29T10:00:00"),
           hold_event("R4", "C4", surprise=1)]
    for payload in bad:
        with pytest.raises(EventError) as e:
            parse_event(payload, set(s.branches))
        with_store(s, lambda st: reject(st, payload, str(e.value)))
    page = web.get("/rejected").text
    for ja in ("受取館に登録されていない館が指定されています", "カード番号がありません(必須)",
               "取置期限の日付の形式が正しくありません", "用意できた日時に時差(+09:00 など)がありません",
               "surprise はこの種類のデータにない項目です".replace(" ", "")):
        assert ja in page, ja
    assert "原文(連携担当者向け)" in page  # the English for the integrator, folded away


def test_refusals_that_are_not_an_invalid_event_say_what_they_are(s, web):
    """A wrong envelope (its raw is the whole message), an event sent to another actor and
    an unusable address are valid events: validating them again named no fault, or a wrong
    one (a message has no "type": "データの種類(type)が不明です"). Their kind says it."""
    logged_in(s, web)
    from worker.app.refusals import RefusalKind, keep_refusal as reject

    message = json.dumps({"queue_name": "other", "actor_name": "hold_ready",
                          "args": [hold_event("R5", "C5")], "kwargs": {}, "options": {}})
    with_store(s, lambda st: reject(st, message, "queue_name: 'other' is not this worker's queue",
                                    kind=RefusalKind.MALFORMED_ENVELOPE))
    with_store(s, lambda st: reject(st, hold_event("R6", "C6"), "type: a hold_ready event was "
                                    "sent to the hold_cancelled actor",
                                    kind=RefusalKind.WRONG_ACTOR))
    page = web.get("/rejected").text
    assert "メッセージの形式(envelope)が正しくありません" in page
    assert "データの種類(type)と送り先(actor_name)が一致しません" in page
    assert "データの種類(type)が不明です" not in page


# -- issue 23: error pages, undo, lookups -------------------------------------------------

def test_404_405_and_500_are_japanese_pages_with_a_way_back(s, caplog):
    import logging
    with TestClient(create_app(s), follow_redirects=False, client=("testclient", 50000),
                    raise_server_exceptions=False) as web:
        logged_in(s, web)
        for path, method, code, words in [("/no-such-page", "get", 404, "ページが見つかりません"),
                                          ("/static/missing.css", "get", 404, "ページが見つかりません"),
                                          ("/calls/called", "get", 405, "このアドレスは開けません")]:
            r = getattr(web, method)(path)
            assert r.status_code == code and words in r.text, (path, r.text)
            assert '<a href="/">トップへ戻る</a>' in r.text and "Not Found" not in r.text
            assert "content-security-policy" in r.headers
        assert "POST" in web.get("/calls/called").headers["allow"]
        # data no page expected (a failure record that is not JSON): an unexpected error
        with_store(s, lambda st: st.r.rpush(st.k.failures, "{not json"))
        with caplog.at_level(logging.ERROR, logger="worker.web.app"):
            r = web.get("/failures")
    assert r.status_code == 500 and "エラーが発生しました" in r.text and "トップへ戻る" in r.text
    assert "Internal Server Error" not in r.text and "content-security-policy" in r.headers
    [rec] = [x for x in caplog.records if "unexpected error on GET /failures" in x.getMessage()]
    assert rec.exc_info and "Traceback" in caplog.text  # logged with its traceback


def test_looking_up_something_that_is_not_a_card_number_says_so(s, web):
    logged_in(s, web)
    page = web.get("/patron", params={"card": "abc def"})
    assert "カード番号ではありません" in page.text and "未登録" not in page.text
    assert "記録(新しい順)" not in page.text
    page = web.get("/patron", params={"card": "２１００００００９"})  # full-width: a card
    assert "カード 210000009" in page.text and "カード番号ではありません" not in page.text


def test_an_undone_call_comes_back_with_name_title_and_phone(s, web):
    logged_in(s, web)
    on_call_list(s, "H1", "C1", pickup_by="2099-12-01", patron_phone="029-123-4567")
    before = web.get("/calls").text
    assert all(x in before for x in ("山田 太郎", "吾輩は猫である", "029-123-4567"))
    page = act(web, "/calls/called", hold_id="H1", anchor="call-H1", next="/calls")
    done = re.search(r'<article class="card" id="called-H1">.*?</article>', page.text, re.S)[0]
    assert "山田 太郎" in done and "吾輩は猫である" in done  # which hold it was, at a glance
    page = act(web, "/calls/uncall", hold_id="H1", anchor="call-H1", next="/calls")
    row = re.search(r'<tr id="call-H1".*?</tr>', page.text, re.S)[0]
    assert all(x in row for x in ("山田 太郎", "吾輩は猫である", "029-123-4567")), row
