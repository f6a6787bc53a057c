"""Issue 21, item 3: the call list printed from Chromium to an A4 PDF. Every entry is in
the PDF's text, no patron's block is split across pages, each branch starts on a page of
its own with its name and the date at the top of every page, the page number at the
bottom, and nothing of the site's navigation. The PDF and its pages as PNG (when
``pdftoppm`` is there) go to ``test-artifacts/print/``."""

from __future__ import annotations

import io
import re
import shutil
import subprocess

import pytest

from tests.helpers import hold_event, run_worker, wait_for
from tests.test_web_browser import PASSWORD, ROOT, browser, s, server, ws  # noqa: F401  (fixtures)

OUT = ROOT / "test-artifacts" / "print"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _patrons() -> list[tuple[str, str, list[dict]]]:
    """(branch, card, events): many patrons at ogawa (several pages), a few at tamari;
    some with several holds, long titles and names."""
    out = []
    for i in range(34):
        branch = "ogawa" if i < 28 else "tamari"
        card = f"21000{i:05d}"
        n = 1 + i % 3
        events = [hold_event(f"HP-{i:02d}-{j}", card, contact="phone", pickup_branch=branch,
                             pickup_by=f"2099-12-{5 + j:02d}", patron_name=f"図書 花子{i:02d}",
                             patron_phone=f"0299{i:02d}1234",
                             item={"title": (f"題名{i:02d}-{j} " + "長い副題のある資料 " * (i % 4)),
                                   "material": "book"})
                  for j in range(n)]
        out.append((branch, card, events))
    return out


def test_the_printed_call_list_is_clean_at_a4(browser, s, server):  # noqa: F811
    from pypdf import PdfReader

    from worker.queue.actors import hold_ready
    from worker.web.auth import Accounts

    patrons = _patrons()
    total = sum(len(ev) for _, _, ev in patrons)
    with run_worker(s):
        for _, _, events in patrons:
            for ev in events:
                hold_ready.send(ev)
        wait_for(lambda: len(ws(s, lambda st: st.calls())) == total, timeout=60)
    ws(s, lambda st: Accounts(st, s.web).add("S01", PASSWORD, "ogawa"))

    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP")
    page = ctx.new_page()
    page.goto(server + "/login")
    page.fill("input[name=staff_id]", "S01")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(server + "/calls")
    page.click("text=印刷")
    assert page.url.endswith("/calls/print")
    OUT.mkdir(parents=True, exist_ok=True)
    pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    ctx.close()
    (OUT / "calls.pdf").write_bytes(pdf)

    reader = PdfReader(io.BytesIO(pdf))
    texts = [re.sub(r"\s+", "", p.extract_text()) for p in reader.pages]
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (595, 842)  # A4 portrait, pt
    assert len(texts) >= 3
    ogawa, tamari = s.branches["ogawa"].name, s.branches["tamari"].name
    for n, text in enumerate(texts, 1):
        assert f"{n}/{len(texts)}" in text, f"page {n}: no page number"
        assert "電話連絡リスト" in text and ("印刷" in text)
        assert "ログアウト" not in text and "メール承認待ち" not in text  # no site navigation
    # each block whole on one page: card, name, phone, every title, last day and hold id
    for branch, card, events in patrons:
        on = [n for n, t in enumerate(texts) if card in t]
        assert len(on) == 1, f"card {card} on pages {on}: its block was split"
        text = texts[on[0]]
        assert (ogawa if branch == "ogawa" else tamari) in text
        for ev in events:
            assert ev["hold_id"] in text and ev["patron_phone"] in text
            assert re.sub(r"\s+", "", ev["item"]["title"]) in text
        assert events[0]["patron_name"].replace(" ", "") in text
    # tamari's list starts on a page of its own: no ogawa card on its pages
    first_tamari = min(n for n, t in enumerate(texts) if patrons[-1][1] in t)
    assert not any(card in texts[first_tamari] for b, card, _ in patrons if b == "ogawa")
    assert all(f"電話連絡リスト{ogawa}" in t for t in texts[:first_tamari])
    assert f"電話連絡リスト{tamari}" in texts[first_tamari]

    if shutil.which("pdftoppm"):  # the pages as images, for a person to look at
        subprocess.run(["pdftoppm", "-png", "-r", "60", str(OUT / "calls.pdf"), str(OUT / "page")],
                       check=True, timeout=120)
