"""Issue 21, item 4: a day of events through the real worker (real Redis, dramatiq, an
SMTP server on loopback) — mails single and in a digest, phone choices, refusals at each
carrier, a bounce mail after sending, registrations approved and rejected, calls marked
and one undone, pickup reminders — then the 「統計」 page, the month's CSV and
``omitama-notify stats`` must agree with each other, with the outcome stream, and with
what happened."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from tests.test_bounce_handling import dsn, ingest
from tests.test_web import client_for, csrf_of, logged_in
from worker.contact import ContactState
from worker.jdate import TOKYO, now_tokyo
from worker.stats.report import COLUMNS

HEAD = dict(COLUMNS)  # column → its heading in the CSV

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

REFUSE = {  # card → (address, relay's reply, bounce reason)
    "E": ("e.filter@docomo.ne.jp", "550 5.7.1 <e.filter@docomo.ne.jp>: rejected by recipient's filter", "filtered"),
    "F": ("f.gone@au.com", "550 5.1.1 <f.gone@au.com>: Recipient address rejected: User unknown", "userunknown"),
    "G": ("g.gone@i.softbank.jp", "550 5.1.1 <g.gone@i.softbank.jp>: User unknown", "userunknown"),
    "K": ("k.gone@example.jp", "550 5.1.1 <k.gone@example.jp>: User unknown", "userunknown"),
}
MAILS = {"A": "a.mail@docomo.ne.jp", "B": "b.mail@ezweb.ne.jp", "C": "c.mail@softbank.ne.jp",
         "D": "d.mail@example.jp"}


@pytest.fixture
def s(settings, smtp_sink, clean_redis, tmp_path):
    return variant(settings, mail={"transport": "smtp", "outbox_dir": tmp_path / "out"},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5},
                   digest={"gather_s": 1},
                   reminder={"enabled": True, "days_before": 1, "hour": 10})


def _status(s, hold_id: str) -> str | None:
    return with_store(s, lambda st: st.get_hold(hold_id)).get("status")


def test_a_day_of_events_is_counted_alike_on_the_page_in_the_csv_and_by_stats(s, smtp_sink,
                                                                             tmp_path):
    from worker.app.registration import approve, reject
    from worker.queue.actors import address_registered, hold_ready

    # patrons with approved addresses (registered and approved: counted at ogawa)
    for card, address in [*MAILS.items(), *((c, a) for c, (a, _, _) in REFUSE.items())]:
        with_store(s, lambda st: set_contact(st, card, ContactState.ACTIVE, address=address))
    for card, (address, reply, _) in REFUSE.items():
        smtp_sink.refuse(address, reply)
    holds = [
        hold_event("HA1", "A"), hold_event("HA2", "A"),            # one digest at ogawa
        hold_event("HA3", "A", pickup_branch="tamari"),           # alone at tamari
        hold_event("HB1", "B", pickup_branch="minori"), hold_event("HC1", "C"),
        hold_event("HD1", "D"),
        hold_event("HE1", "E"), hold_event("HF1", "F", pickup_branch="tamari"),
        hold_event("HG1", "G", pickup_branch="minori"), hold_event("HK1", "K"),
        hold_event("HP1", "P", contact="phone", pickup_branch="tamari"),
        hold_event("HN1", "N", pickup_branch="minori"),           # e-mail, but no address
    ]
    with run_worker(s):
        for ev in holds:
            hold_ready.send(ev)
        for card, branch in (("R1", "minori"), ("R2", "tamari"), ("R3", "ogawa")):
            address_registered.send({
                "event_id": f"reg-{card}", "type": "address_registered", "card_number": card,
                "email": f"{card.lower()}.new@docomo.ne.jp", "application_branch": branch,
                "registered_at": now_tokyo().isoformat(timespec="seconds")})
        wait_for(lambda: all(_status(s, ev["hold_id"]) in ("sent", "phoned") for ev in holds),
                 timeout=30)
        wait_for(lambda: len([m for m in smtp_sink.messages if "r1.new" in str(m.rcpt_tos)]) == 1)
    reminded = _reminders(s, datetime(2099, 12, 4, 10, 30, tzinfo=TOKYO))
    assert {h: _status(s, h) for h in ("HA1", "HA2", "HA3", "HB1", "HC1", "HD1")} == dict.fromkeys(
        ("HA1", "HA2", "HA3", "HB1", "HC1", "HD1"), "sent")
    # a bounce mail for B's notice, after it was sent
    sent_b = next(m for m in smtp_sink.messages if MAILS["B"] in m.rcpt_tos)
    bounce = tmp_path / "b.eml"
    bounce.write_bytes(dsn(sent_b.data, MAILS["B"], "5.7.1",
                           "550 5.7.1 <b.mail@ezweb.ne.jp>: rejected by recipient's filter"))
    [row] = ingest(str(bounce))
    assert row["hold_action"] == "phoned"

    # staff: R1 approved with the code of its mail, R2 rejected, R3 left waiting
    mail_r1 = next(m for m in smtp_sink.messages if "r1.new@docomo.ne.jp" in m.rcpt_tos)
    body = email.message_from_bytes(mail_r1.data, policy=email.policy.default).get_body(
        ("plain",)).get_content()
    code = re.findall(r"^(\d{6})$", body, re.M)[0]
    with_store(s, lambda st: approve(st, s, "R1", "S01", code=code))
    with_store(s, lambda st: reject(st, "R2", "S01", "電話で本人が取消を希望", shown=None))
    with client_for(s) as web:
        logged_in(s, web)
        token = csrf_of(web.get("/calls").text)
        for path, hold_id in (("/calls/called", "HP1"), ("/calls/called", "HN1"),
                              ("/calls/uncall", "HN1")):
            r = web.post(path, data={"csrf": token, "hold_id": hold_id, "next": "/calls"})
            assert r.status_code == 303, r.text
        page = web.get("/stats").text
        pages = {b: web.get(f"/stats?branch={b}").text for b in s.branches}
        month = now_tokyo().strftime("%Y-%m")
        got = web.get(f"/stats/csv?month={month}")
    assert got.headers["content-type"].startswith("text/csv")
    raw = got.content
    assert raw.startswith("\ufeff".encode()), "Excel needs the BOM to read UTF-8"
    cli = subprocess.run([sys.executable, "-m", "worker.cli.main", "stats", "--month", month, "--csv"],
                         capture_output=True, cwd=ROOT, env=os.environ, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout == raw, "stats --csv prints the page's CSV"
    text = subprocess.run([sys.executable, "-m", "worker.cli.main", "stats", "--month", month],
                          capture_output=True, cwd=ROOT, env=os.environ, timeout=60, text=True)
    assert text.returncode == 0, text.stderr

    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    today = now_tokyo().date().isoformat()
    per: dict[str, Counter[str]] = {}
    for r in rows:
        if r["日付"] == today:
            by_key = {c: r[h] for c, h in HEAD.items()}
            per[r["館コード"]] = Counter({k: int(v) for k, v in by_key.items()
                                       if v.lstrip("-").isdigit()})
        else:
            assert all(v in ("0", "") for k, v in r.items() if k not in ("日付", "館コード", "館")), r
    assert set(per) == set(s.branches)

    # what happened, branch by branch
    assert per["ogawa"]["mailed_digest"] == 2 and per["ogawa"]["mailed_single"] == 2   # HA1+HA2; HC1, HD1
    assert per["tamari"]["mailed_single"] == 1 and per["minori"]["mailed_single"] == 1  # HA3; HB1
    assert per["ogawa"]["mailed_docomo"] == 2 and per["ogawa"]["mailed_softbank"] == 1
    assert per["ogawa"]["mailed_other"] == 1 and per["minori"]["mailed_au"] == 1
    for card, branch, carrier in (("E", "ogawa", "docomo"), ("F", "tamari", "au"),
                                  ("G", "minori", "softbank"), ("K", "ogawa", "other")):
        assert per[branch][f"bounced_{carrier}"] >= 1, (card, per[branch])
    assert per["ogawa"]["sendfail"] == 2 and per["tamari"]["sendfail"] == 1
    assert per["minori"]["sendfail"] == 1
    assert per["minori"]["bounced_au"] == 1                     # B's bounce mail, after sending
    assert per["ogawa"]["failed"] == 2 and per["tamari"]["failed"] == 1
    assert per["minori"]["failed"] == 2                   # G refused, B bounced later
    assert per["tamari"]["listed_chose_phone"] == 1 and per["minori"]["listed_no_address"] == 1
    assert per["tamari"]["called"] == 1 and per["minori"]["called"] == 0  # HN1 undone
    assert sum(p["reminded"] for p in per.values()) == reminded["holds"] > 0
    assert per["ogawa"]["registered"] == 8 + 1 and per["ogawa"]["approved_without_code"] == 8
    assert per["minori"]["registered"] == 1 and per["minori"]["approved_code"] == 1
    assert per["tamari"]["registered"] == 1 and per["tamari"]["rejected"] == 1
    assert per["minori"]["wait_n"] == 1 and per["minori"]["wait_d0"] == 1
    assert sum(p["wait_d0"] for p in per.values()) == 9

    # … and as the outcome stream tells it (the counts cannot drift from the outcomes)
    stream = with_store(s, lambda st: st.r.xrange(st.k.outcomes))
    branch_of = {ev["hold_id"]: ev["pickup_branch"] for ev in holds}
    told: Counter[tuple[str, str]] = Counter()
    for _, f in stream:
        told[(branch_of[f["hold_id"]], f["outcome"])] += 1
    for b in s.branches:
        mailed = per[b]["mailed_single"] + per[b]["mailed_digest"]
        assert told[(b, "mailed")] == mailed
        assert told[(b, "bounced")] == sum(per[b][f"bounced_{c}"] for c in ("docomo", "au", "softbank", "other"))
        assert told[(b, "reminded")] == per[b]["reminded"]
        # an undo is a "listed" in the stream, and takes its call back in the counts
        undone = 1 if b == "minori" else 0
        assert told[(b, "listed")] - undone == per[b]["phone"] + per[b]["failed"]
        assert told[(b, "called")] - undone == per[b]["called"]

    # the page (all branches and each) and `stats` show the same sums as the CSV
    everything = sum(per.values(), Counter())
    for html, c in [(page, everything), *((pages[b], per[b]) for b in s.branches)]:
        summary = _table(html, "summary-table")
        assert summary["メールで連絡(予約数)"][0] == str(c["mail"])
        assert summary["電話連絡へ(メール以外の理由)"][0] == str(c["phone"])
        assert summary["メール不達で電話連絡へ"][0] == str(c["failed"])
        assert summary["承認(確認番号あり)"][0] == str(c["approved_code"])
        assert summary["登録取消"][0] == str(c["rejected"])
        assert summary["電話連絡済み"][1] == str(c["called"])
        last = _table(html, "recent-table")[f"{now_tokyo().month}/{now_tokyo().day}"]
        assert last == [str(c["mail"]), str(c["phone"]), str(c["failed"])]
    assert _table(page, "pending-table")["小川館" if "小川館" in page else
                                         s.branches["ogawa"].name][0] == "1"   # R3 waiting
    lines = {l.split()[0]: l.split()[1:] for l in text.stdout.splitlines()[2:]}
    names = [s.branches[b].name for b in s.branches]
    assert lines["メールで連絡(予約数)"] == [str(per[b]["mail"]) for b in s.branches] + [
        str(everything["mail"])], (names, text.stdout)
    assert lines["メール不達で電話連絡へ"][-1] == str(everything["failed"])


def _reminders(s, at: datetime) -> dict:
    """One pass of pickup reminders, as ``reminders run --at`` does (the mailed holds'
    last day is 2099-12-05)."""
    import asyncio

    from worker.app.reminders import run_pass
    from worker.runtime import Runtime

    async def go() -> dict:
        rt = Runtime.create(s)
        try:
            return await run_pass(rt, at)
        finally:
            await rt.close()
    return asyncio.run(go())


def _table(html: str, table_id: str) -> dict[str, list[str]]:
    """First cell → the other cells, of each body row of the table ``table_id``."""
    body = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)[1]
    out = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [re.sub(r"<[^>]+>", " ", c).split()[0] if re.sub(r"<[^>]+>", " ", c).split() else ""
                 for c in re.findall(r"<td>(.*?)</td>", row, re.S)]
        out[cells[0]] = cells[1:]
    return out
