"""The staff web page in a real headless Chromium (Debian's ``chromium`` package, driven by
Playwright): a librarian logs in, approves a patron with the code from the confirmation
mail, marks a phone call, re-enables a suspended address, and logs out. Data comes from
a real dramatiq worker and a real SMTP server; screenshots of every page go to
``test-artifacts/web/``.

Chromium missing: the test fails in CI (``CI=true``) and is skipped elsewhere.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import free_port, hold_event, run_worker, variant, wait_for, with_store
from tests.helpers import set_contact
from worker.contact import ContactState

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-artifacts" / "web"
CHROMIUM = os.environ.get("OMITAMA_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "kasidasi-2026"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _need_browser() -> None:
    missing = []
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[test]')")
    if not missing:
        return
    why = "browser tests need " + " and ".join(missing)
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(why + " — CI must install it (.ci/run does)", pytrace=False)
    pytest.skip(why)


@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})


@pytest.fixture
def server(s):
    """uvicorn serving the staff web page on a free loopback port, in a thread."""
    import uvicorn

    from worker.web.app import create_app

    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    wait_for(lambda: srv.started, timeout=15)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def browser():
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def ws(s, fn):
    """with_store from a thread of its own: Playwright's sync API keeps an event loop
    running in this one, where asyncio.run() cannot start another."""
    with ThreadPoolExecutor(1) as ex:
        return ex.submit(with_store, s, fn).result()


def code_in(message) -> str:
    body = email.message_from_bytes(message.data, policy=email.policy.default).get_content()
    return re.findall(r"^(\d{6})$", body, re.M)[0]


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    fits(page)


def fits(page) -> None:
    """No sideways scrolling: the page is no wider than the window."""
    wide, inner = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
    assert wide <= inner, f"{page.url} is {wide} px wide in a {inner} px window"


def test_a_librarian_approves_phones_and_reenables_in_a_real_browser(browser, s, smtp_sink,
                                                                       server):
    from worker.queue.actors import address_registered, hold_ready
    from worker.web.auth import Accounts

    # the worker: a registration (confirmation mail with the code) and two holds for the
    # call list, one with a title that tries to run a script
    with run_worker(s):
        address_registered.send({"event_id": "r1", "type": "address_registered",
                                 "card_number": "2100000003", "email": "taro.minori@docomo.ne.jp",
                                 "registered_at": "2026-11-29T09:30:00+09:00",
                                 "application_branch": "minori"})
        hold_ready.send(hold_event("HX-1001", "2100000001", contact="phone",
                                   pickup_branch="minori", pickup_by="2099-12-05"))
        hold_ready.send(hold_event("HX-1002", "2100000002", contact="email",
                                   pickup_branch="ogawa", pickup_by="2099-12-03",
                                   item={"title": "<script>alert('x')</script>危険な題名",
                                         "material": "book"}))
        # an event the ILS got wrong: refused, and its hold listed for a call all the same
        hold_ready.send(hold_event("HX-1003", "2100000004", pickup_branch="tamari",
                                   pickup_by="12/20"))
        wait_for(lambda: smtp_sink.messages and len(ws(s, lambda st: st.calls())) == 3)
    code = code_in(smtp_sink.messages[0])
    # a suspended address with the failure that suspended it
    ws(s, lambda st: set_contact(st, "2100000009", ContactState.SUSPENDED,
                                            address="hanako@ezweb.ne.jp", why="filtered"))
    from worker.bounces.failures import advice_for
    ws(s, lambda st: st.add_failure({
        "card_number": "2100000009", "hold_id": "HX-0999", "reason": "filtered",
        "permanent": True, "misconfigured_recipient": True, "status": "5.2.0",
        "diagnostic": "550 5.2.0 Message rejected (filtered by the recipient)",
        "advice": advice_for("filtered", True, "hanako@ezweb.ne.jp"),
        "address": "h***@ezweb.ne.jp", "source": "smtp"}))
    from worker.app.refusals import keep_refusal as reject
    ws(s, lambda st: reject(st, {"event_id": "bad-1", "type": "hold_ready",
                                         "pickup_branch": "mito"},
                                    "pickup_branch: unknown branch 'mito'",
                                    event_id="bad-1", event_type="hold_ready"))
    ws(s, lambda st: Accounts(st, s.web).add("S01", PASSWORD, "minori"))

    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = ctx.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.set_default_timeout(15_000)

    # logged out: every page leads to the login form
    page.goto(server + "/calls?branch=ogawa")  # a deep link keeps its query through login
    assert page.url.startswith(server + "/login")
    shot(page, "01-login")
    page.fill("input[name=staff_id]", "S01")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert "職員IDまたはパスワードが違います" in page.inner_text("main")
    assert page.evaluate("document.activeElement.name") == "password"  # type it again at once
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    assert page.url == server + "/calls?branch=ogawa"  # back to the page asked for

    page.goto(server + "/")
    assert page.inner_text("#count-pending") == "1"
    assert page.inner_text("#count-calls") == "3"
    assert page.inner_text("#count-failures") == "1"
    shot(page, "02-home")

    # pending approval with the code read out by the patron (typed full-width, as it happens)
    page.click("nav >> text=メール承認待ち")
    card = page.locator("#pending-2100000003")
    assert "taro.minori@docomo.ne.jp" in card.inner_text() and "ドコモ" in card.inner_text()
    shot(page, "03-pending")
    card.locator("input[name=code]").fill("000000" if code != "000000" else "111111")
    card.locator("button.primary").click()
    assert "あと 4 回" in page.inner_text(".flash.error")
    shot(page, "04-pending-wrong-code")
    page.locator("#pending-2100000003 input[name=code]").fill(
        code.translate(str.maketrans("0123456789", "０１２３４５６７８９")))
    page.locator("#pending-2100000003 button.primary").click()
    assert "承認しました" in page.inner_text(".flash.ok")
    shot(page, "05-pending-approved")

    # the phone-call list: the script-laden title is text, nothing ran
    page.click("nav >> text=電話連絡リスト")
    assert "<script>alert('x')</script>危険な題名" in page.inner_text("#call-HX-1002")
    assert page.locator("section h2").first.inner_text().startswith("美野里")  # own branch first
    refused = page.locator("#call-HX-1003")
    assert "予約連携データに不備" in refused.inner_text() and "不明(ILSで確認)" in refused.inner_text()
    assert "urgent" in (refused.get_attribute("class") or "")  # last day unknown: phone first
    assert "pickup_by" in (refused.locator("td[data-label=電話連絡の理由]").get_attribute("title")
                           or "")
    # the patron's name from the event, the heading, the year of a day not in this year
    assert "山田 太郎" in page.inner_text("#call-HX-1001")
    assert "電話連絡の理由" in page.inner_text("table thead")
    assert "2099年12月5日" in page.inner_text("#call-HX-1001")
    shot(page, "06-calls")
    row = page.locator("#call-HX-1001")
    row.locator("input[name=note]").fill("ご本人に伝えました")
    row.locator("button").click()
    assert "連絡済みにしました" in page.inner_text(".flash.ok")
    assert page.locator("#call-HX-1001").count() == 0
    assert page.evaluate("location.hash") == "#called-HX-1001"  # at the hold, not the top
    shot(page, "07-calls-done")
    page.locator("#called-HX-1001 button").click()  # a misclick: undo
    assert "リストに戻しました" in page.inner_text("#call-HX-1001")
    shot(page, "07b-calls-undone")
    page.locator("#call-HX-1001 input[name=note]").fill("ご本人に伝えました")
    page.locator("#call-HX-1001 button").click()
    assert page.locator("#call-HX-1001").count() == 0

    # delivery failures: re-enable the suspended address
    page.click("nav >> text=メール不達")
    assert "受信拒否設定" in page.inner_text("main")
    page.click("summary >> text=詳しい情報")
    shot(page, "08-failures")
    form = page.locator("form[action='/failures/reenable']")
    form.locator("input[name=reason]").fill("受信リストに登録したと電話あり")
    form.locator("button").click()
    assert "再開しました" in page.inner_text(".flash.ok")
    shot(page, "09-failures-reenabled")

    page.click("nav >> text=受付できなかったデータ")
    page.click("summary >> text=表示")
    assert "受取館に登録されていない館が指定されています" in page.inner_text("main")
    shot(page, "10-rejected")

    page.click("nav >> text=利用者を調べる")
    page.fill("main input[name=card]", "2100000003")
    page.click("main button[type=submit]")
    assert "メール利用中" in page.inner_text("main")
    shot(page, "11-patron")

    page.click("text=ログアウト")
    assert page.url.startswith(server + "/login") and "ログアウトしました" in page.inner_text("main")
    page.goto(server + "/")
    assert page.url.startswith(server + "/login")
    shot(page, "12-logged-out")
    ctx.close()

    assert dialogs == []  # no script ran
    for card, what in [("2100000003", "code checked"), ("2100000001", "phoned about hold HX-1001"),
                       ("2100000009", "address re-enabled")]:
        last = ws(s, lambda st: st.history(card))[-1]
        assert what in last["what"] and last["staff"] == "S01", last
    patron = ws(s, lambda st: st.r.hgetall(st.k.patron("2100000009")))
    assert patron["state"] == "active"
    assert len(list(SHOTS.glob("*.png"))) >= 12


def logged_in_page(browser, server: str, width: int):
    """A browser context of ``width`` px, logged in as S01."""
    ctx = browser.new_context(viewport={"width": width, "height": 800}, locale="ja-JP")
    page = ctx.new_page()
    page.set_default_timeout(15_000)
    page.goto(server + "/login")
    page.fill("input[name=staff_id]", "S01")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return ctx, page


PAGES = ["/", "/pending", "/calls", "/failures", "/rejected", "/patron?card=2100000009",
         "/patron", "/stats", "/login"]


def test_every_page_fits_a_phone_and_a_desktop(browser, s, server):
    """At 390 px (a phone) and 1280 px every page fits without sideways scrolling, with
    the longest things staff meet: a long address, title, name, hold id and raw event."""
    from worker.bounces.failures import advice_for
    from worker.app.refusals import keep_refusal as reject
    from worker.web.auth import Accounts

    long_addr = "a.very.long.local.part.of.an.address.1234567890@subdomain.example-provider.ne.jp"
    with run_worker(s):
        from worker.queue.actors import address_registered, hold_ready
        address_registered.send({"event_id": "r9", "type": "address_registered",
                                 "card_number": "2100000003", "email": long_addr,
                                 "registered_at": "2026-11-29T09:30:00+09:00",
                                 "application_branch": "minori"})
        hold_ready.send(hold_event("HX-2001-LONG-HOLD-IDENTIFIER", "2100000001",
                                   contact="phone", pickup_branch="minori",
                                   pickup_by="2099-12-05", patron_name="長い名前の利用者 " * 3,
                                   item={"title": "とても長い題名の本" * 12, "material": "book"}))
        wait_for(lambda: len(ws(s, lambda st: st.calls())) == 1
                 and ws(s, lambda st: st.r.zcard(st.k.pending)) == 1)
    ws(s, lambda st: set_contact(st, "2100000009", ContactState.SUSPENDED, address=long_addr))
    ws(s, lambda st: st.add_failure({
        "card_number": "2100000009", "hold_id": "HX-0999", "reason": "filtered",
        "permanent": True, "misconfigured_recipient": True, "status": "5.2.0",
        "diagnostic": "550 5.2.0 " + "x" * 300, "advice": advice_for("filtered", True, long_addr),
        "address": "a***@subdomain.example-provider.ne.jp", "source": "smtp"}))
    ws(s, lambda st: reject(st, {"event_id": "bad-" + "9" * 80, "type": "hold_ready",
                                 "item": {"title": "y" * 400}},
                            "pickup_branch: unknown branch 'mito'" + "; z" * 100,
                            event_id="bad-" + "9" * 80, event_type="hold_ready"))
    ws(s, lambda st: Accounts(st, s.web).add("S01", PASSWORD, "minori"))

    for width in (390, 1280):
        ctx, page = logged_in_page(browser, server, width)
        for path in PAGES[:-1]:
            page.goto(server + path)
            for summary in page.locator("summary").all():
                summary.click()  # the diagnostics and raw events, opened
            name = path.strip("/").replace("?", "-").replace("=", "-") or "home"
            shot(page, f"fit-{width}-{name}")
        page.goto(server + "/calls")
        button = page.locator("#call-HX-2001-LONG-HOLD-IDENTIFIER button")
        box = button.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width  # on screen
        page.click("text=ログアウト")
        shot(page, f"fit-{width}-login")
        ctx.close()


# -- issue 23: found on screens at 390 and 1280 px -----------------------------------------

TAPPED = "button, nav a, .filter a, a.tel, summary"


def _small_targets(page) -> list[str]:
    """What a finger taps, visible and less than 44 px high (on a phone)."""
    return page.evaluate("""(sel) => [...document.querySelectorAll(sel)]
        .filter(e => e.offsetParent !== null)
        .map(e => [e.innerText.trim().slice(0, 30), e.getBoundingClientRect().height])
        .filter(([, h]) => h < 44).map(([t, h]) => `${t}: ${h.toFixed(0)} px`)""", TAPPED)


def test_undo_error_pages_lookups_and_tap_targets_at_390_and_1280(browser, s, server):
    from worker.bounces.failures import advice_for
    from worker.queue.actors import hold_ready
    from worker.web.auth import Accounts

    with run_worker(s):
        hold_ready.send(hold_event("HX-3001", "2100000001", contact="phone",
                                   pickup_branch="minori", pickup_by="2099-12-05",
                                   patron_name="電話 花子", patron_phone="029-123-4567",
                                   item={"title": "取り消しの本", "material": "book"}))
        for n in (1, 2):  # two holds of one patron: one entry, a button per hold
            hold_ready.send(hold_event(f"HX-320{n}", "2100000002", contact="phone",
                                       pickup_branch="minori", pickup_by="2099-12-06",
                                       item={"title": f"二冊目の本{n}", "material": "book"}))
        wait_for(lambda: len(ws(s, lambda st: st.calls())) == 3)
    ws(s, lambda st: set_contact(st, "2100000009", ContactState.SUSPENDED,
                                 address="hanako@ezweb.ne.jp", why="filtered"))
    ws(s, lambda st: st.add_failure({
        "card_number": "2100000009", "hold_id": "HX-0999", "reason": "filtered",
        "permanent": True, "misconfigured_recipient": True, "status": "5.2.0",
        "diagnostic": "550 5.2.0 rejected", "advice": advice_for("filtered", True, "h@ezweb.ne.jp"),
        "address": "h***@ezweb.ne.jp", "source": "smtp"}))
    ws(s, lambda st: Accounts(st, s.web).add("S01", PASSWORD, "minori"))

    for width in (390, 1280):
        ctx, page = logged_in_page(browser, server, width)

        # tap targets: every button and link a finger uses is 44 px high on a phone
        for path in ("/", "/calls", "/failures", "/patron?card=2100000009", "/pending"):
            page.goto(server + path)
            if width == 390:
                assert _small_targets(page) == [], (path, _small_targets(page))
        page.goto(server + "/calls")
        assert page.locator("text=この資料だけ連絡済み").count() == 2
        shot(page, f"i23-{width}-calls")

        # 連絡済み, then undone: the entry comes back whole
        row = page.locator("#call-HX-3001")
        row.locator("button").click()
        done = page.locator("#called-HX-3001").inner_text()
        assert "電話 花子" in done and "取り消しの本" in done, done
        shot(page, f"i23-{width}-called")
        page.locator("#called-HX-3001 button").click()
        back = page.locator("#call-HX-3001").inner_text()
        assert all(x in back for x in ("電話 花子", "取り消しの本", "029-123-4567")), back
        shot(page, f"i23-{width}-undone")

        # error pages: Japanese, and a way back to the front page
        for path, words in [("/no-such-page", "ページが見つかりません"),
                            ("/calls/called", "このアドレスは開けません")]:
            page.goto(server + path)
            assert words in page.inner_text("main") and "Not Found" not in page.content()
            shot(page, f"i23-{width}-error-{path.strip('/').replace('/', '-')}")
            page.click("main >> text=トップへ戻る")
            assert page.url == server + "/"
        ws(s, lambda st: st.r.rpush(st.k.failures, "{not json"))  # data no page expected
        page.goto(server + "/failures")
        assert "エラーが発生しました" in page.inner_text("main")
        shot(page, f"i23-{width}-error-500")
        ws(s, lambda st: st.r.lrem(st.k.failures, 0, "{not json"))
        page.click("text=トップへ戻る")
        assert page.url == server + "/"

        # a lookup of something that is not a card number says so
        page.goto(server + "/patron")
        page.fill("main input[name=card]", "abc def")
        page.click("main button[type=submit]")
        text = page.inner_text("main")
        assert "カード番号ではありません" in text and "未登録" not in text
        shot(page, f"i23-{width}-not-a-card")
        ctx.close()
