"""Bounces end to end: send-time refusals, ingested bounce mails, tracing, suspension.

Real Redis, a real worker, a real SMTP server; `bounces ingest` run as a command.
"""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.helpers import hold_event, run_worker, variant, wait_for, with_store
from tests.helpers import set_contact
from worker.bounces.scoring import judge
from worker.contact import ContactState
from worker.settings import BounceSettings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})


def active(s, card: str, address: str) -> None:
    with_store(s, lambda st: set_contact(st, card, ContactState.ACTIVE, address=address, why="test"))


def patron(s, card: str) -> dict:
    return with_store(s, lambda st: st.r.hgetall(st.k.patron(card)))


def hold(s, hold_id: str) -> dict:
    return with_store(s, lambda st: st.get_hold(hold_id))


def send_and_wait(s, *events, status="sent") -> None:
    from worker.queue.actors import hold_ready
    with run_worker(s):
        for ev in events:
            hold_ready.send(ev)
        for ev in events:
            wait_for(lambda: hold(s, ev["hold_id"]).get("status") == status)


def failures(s) -> list[dict]:
    return with_store(s, lambda st: st.failures())


# -- the scoring model (pure) ---------------------------------------------------------

CFG = BounceSettings(points_per_day=1, threshold=5, stale_after_days=7)
DAY = date(2026, 12, 1)


def test_misconfigured_and_dead_addresses_are_suspended_at_once():
    assert judge("filtered", True, True, DAY, {}, CFG).suspend
    assert judge("userunknown", True, False, DAY, {}, CFG).suspend
    assert judge("hostunknown", True, False, DAY, {}, CFG).suspend


def test_other_permanent_bounces_score_one_point_a_day_until_the_threshold():
    days = {DAY - timedelta(days=i): 1.0 for i in range(1, 5)}  # four earlier days
    v = judge("spamdetected", True, False, DAY, days, CFG)
    assert (v.points, v.score, v.suspend) == (1, 5, True)
    again = judge("spamdetected", True, False, DAY, {**days, DAY: 1.0}, CFG)
    assert again.points == 0  # at most one point a day


def test_points_go_stale_and_soft_bounces_score_nothing():
    old = {DAY - timedelta(days=i): 1.0 for i in range(7, 11)}
    assert judge("rejected", True, False, DAY, old, CFG).score == 1
    assert judge("mailboxfull", False, False, DAY, {}, CFG) == judge(
        "mailboxfull", False, False, DAY, {}, CFG)
    assert judge("mailboxfull", False, False, DAY, {}, CFG).points == 0


# -- send-time refusals ------------------------------------------------------------

@pytest.mark.parametrize("address,reply,reason,suspended", [
    ("nobody@example.jp", "550 5.1.1 <nobody@example.jp>: Recipient address rejected: User unknown",
     "userunknown", True),
    ("taro@docomo.ne.jp", "550 5.7.1 <taro@docomo.ne.jp>: Recipient address rejected: rejected by recipient's filter",
     "filtered", True),
    ("full@example.jp", "552 5.2.2 <full@example.jp>: Mailbox full", "mailboxfull", False),
])
def test_send_time_refusal(s, smtp_sink, address, reply, reason, suspended):
    active(s, "C1", address)
    smtp_sink.refuse(address, reply)
    send_and_wait(s, hold_event("H1", "C1"), status="phoned")
    [f] = failures(s)
    assert f["reason"] == reason and f["hold_id"] == "H1" and f["card_number"] == "C1"
    assert f["advice"] and f["diagnostic"].startswith(reply.split()[0])
    assert (patron(s, "C1")["state"] == "suspended") is suspended
    [call] = with_store(s, lambda st: st.calls())
    assert call["reason"] == "bounced"


def test_filtered_docomo_advice_names_the_sender(s, smtp_sink):
    active(s, "C1", "taro@docomo.ne.jp")
    smtp_sink.refuse("taro@docomo.ne.jp", "550 5.7.1 Message rejected by recipient's filter")
    send_and_wait(s, hold_event("H1", "C1"), status="phoned")
    [f] = failures(s)
    assert f["misconfigured_recipient"] is True
    assert "受信リスト設定" in f["advice"] and "lib@city.omitama.ibaraki.jp" in f["advice"]


def test_421_then_success_is_one_mail_and_no_failure(s, smtp_sink):
    active(s, "C1", "grey@example.jp")
    smtp_sink.refuse("grey@example.jp", "421 4.7.0 Try again later", None)
    send_and_wait(s, hold_event("H1", "C1"))
    assert len(smtp_sink.messages) == 1 and failures(s) == []
    assert patron(s, "C1")["state"] == "active"


# -- bounce mails -------------------------------------------------------------------

def dsn(original: bytes | None, recipient: str, status: str, diag: str, mid: str = "<b1@mx>") -> bytes:
    quoted = b""
    if original is not None:
        headers = original.split(b"\r\n\r\n", 1)[0]
        quoted = (b"--BB\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers + b"\r\n")
    return (f"From: MAILER-DAEMON@mx.example.jp\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {mid}\r\n"
            f"Date: Tue, 01 Dec 2026 10:00:00 +0900\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="BB"\r\n\r\n'
            f"--BB\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
            f"--BB\r\nContent-Type: message/delivery-status\r\n\r\n"
            f"Reporting-MTA: dns; mx.example.jp\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {diag}\r\n\r\n").encode() + quoted + b"--BB--\r\n"


def ingest(path: str, stdin: bytes | None = None) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "bounces", "ingest", path, "--json"],
                       input=stdin, capture_output=True, cwd=ROOT, timeout=60, env=os.environ)
    assert r.returncode == 0, r.stderr
    return [json.loads(x) for x in r.stdout.decode().splitlines()]


def test_bounce_traced_by_message_id_phones_hold_and_suspends(s, smtp_sink, tmp_path):
    active(s, "C1", "taro@docomo.ne.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    bounce = dsn(smtp_sink.messages[0].data, "taro@docomo.ne.jp", "5.7.1",
                 "550 5.7.1 <taro@docomo.ne.jp>: rejected by recipient's filter")
    f = tmp_path / "bounce.eml"
    f.write_bytes(bounce)
    [row] = ingest(str(f))
    assert row["traced"] == "message-id" and row["hold_id"] == "H1" and row["card_number"] == "C1"
    assert row["reason"] == "filtered" and row["suspended"] == ["C1"]
    assert row["hold_action"] == "phoned"
    assert hold(s, "H1")["status"] == "phoned"
    assert [c["reason"] for c in with_store(s, lambda st: st.calls())] == ["bounced"]
    assert patron(s, "C1")["state"] == "suspended"
    # the same bounce again counts once
    [again] = ingest(str(f))
    assert again["duplicate"] is True
    assert len(failures(s)) == 1


def test_verified_bounce_fans_out_to_every_card_sharing_the_address(s, smtp_sink):
    for card in ("C1", "C2"):
        active(s, card, "family@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    bounce = dsn(smtp_sink.messages[0].data, "family@example.jp", "5.1.1", "550 5.1.1 User unknown")
    [row] = ingest("-", stdin=bounce)
    assert row["traced"] == "message-id" and row["trust"] == "verified"
    assert row["suspended"] == ["C1", "C2"]
    assert {f["card_number"] for f in failures(s)} == {"C1", "C2"}
    history = with_store(s, lambda st: st.history("C2"))
    assert history[-1]["what"] == "address suspended" and "userunknown" in history[-1]["why"]


def test_bounce_traced_by_address_only_is_unverified_and_changes_no_state(s, smtp_sink):
    """Issue 10: a DSN quoting no Message-ID used to suspend the whole family."""
    for card in ("C1", "C2"):
        active(s, card, "family@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    bounce = dsn(None, "family@example.jp", "5.1.1", "550 5.1.1 User unknown")
    [row] = ingest("-", stdin=bounce)
    assert row["traced"] == "address" and row["card_number"] == "C1" and row["hold_id"] == "H1"
    assert row["trust"] == "unverified" and row["suspended"] == [] and row["hold_action"] is None
    assert [patron(s, c)["state"] for c in ("C1", "C2")] == ["active", "active"]
    assert hold(s, "H1")["status"] == "sent"
    fs = failures(s)
    assert {f["card_number"] for f in fs} == {"C1", "C2"}
    assert all(f["verified"] is False and f["traced"] == "address" for f in fs)


def test_picked_up_hold_is_not_phoned_after_a_bounce(s, smtp_sink, tmp_path):
    from worker.queue.actors import hold_picked_up
    active(s, "C1", "taro@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    with run_worker(s):
        hold_picked_up.send({"event_id": "p1", "type": "hold_picked_up", "hold_id": "H1"})
        wait_for(lambda: hold(s, "H1").get("closed") == "picked_up")
    bounce = dsn(smtp_sink.messages[0].data, "taro@example.jp", "5.1.1", "550 5.1.1 unknown")
    [row] = ingest("-", stdin=bounce)
    assert row["hold_action"] == "picked_up"
    assert with_store(s, lambda st: st.calls()) == []


def test_maildir_and_mbox_and_non_bounces(s, smtp_sink, tmp_path):
    active(s, "C1", "a@example.jp")
    md = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    md.add(dsn(None, "a@example.jp", "5.1.1", "550 5.1.1 unknown", mid="<m1@mx>"))
    md.add(b"From: friend@example.jp\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n"
           b"Message-ID: <m2@mx>\r\n\r\nI am away until Monday.\r\n")
    rows = ingest(str(tmp_path / "Maildir"))
    assert sorted(r["is_bounce"] for r in rows) == [False, True]
    assert [r["action"] for r in rows if not r["is_bounce"]] == ["recorded only"]
    mb = mailbox.mbox(str(tmp_path / "box.mbox"), create=True)
    mb.add(dsn(None, "b@example.jp", "4.2.2", "452 4.2.2 Mailbox full", mid="<m3@mx>"))
    mb.flush()
    [row] = ingest(str(tmp_path / "box.mbox"))
    assert row["is_bounce"] is True and row["permanent"] is False
    assert row["action"] == "recorded only"


@pytest.mark.parametrize("content", [
    b"", b"\x00\xff\xfe garbage \x80" * 100,
    b"Content-Type: multipart/report; boundary=\"X\"\r\n\r\n--X\r\nContent-Type: message/delivery-st",
    b"From: x@y\r\nSubject: big\r\n\r\n" + b"A" * (10 * 1024 * 1024),
])
def test_bad_input_never_crashes_and_changes_nothing(s, tmp_path, content):
    f = tmp_path / "bad.eml"
    f.write_bytes(content)
    rows = ingest(str(f))
    assert len(rows) == 1 and rows[0]["file"].endswith("bad.eml")
    assert failures(s) == []


def test_unreadable_path_is_reported_and_run_goes_on(s, tmp_path):
    """A missing file exits non-zero, as `bounces classify` does (issue 23: exit 0 made a
    typo look like an empty mailbox); a readable path beside it is still ingested."""
    (tmp_path / "ok.eml").write_bytes(b"From: a@b.jp\r\nSubject: hi\r\n\r\nhello\r\n")
    for cmd in ("ingest", "classify"):
        r = subprocess.run([sys.executable, "-m", "worker.cli.main", "bounces", cmd,
                            str(tmp_path / "missing.eml"), *[str(tmp_path / "ok.eml")] * (
                                cmd == "classify")], capture_output=True, text=True, cwd=ROOT,
                           timeout=60)
        assert r.returncode == 1, (cmd, r.stdout, r.stderr)
        assert "missing.eml" in r.stdout + r.stderr, (cmd, r.stdout, r.stderr)
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "bounces", "ingest",
                        str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and "mails 1," in r.stdout, r.stdout + r.stderr


def test_review_failures_json_and_reenable(s, smtp_sink):
    active(s, "C1", "nobody@example.jp")
    smtp_sink.refuse("nobody@example.jp", "550 5.1.1 User unknown")
    send_and_wait(s, hold_event("H1", "C1"), status="phoned")
    cli = [sys.executable, "-m", "worker.cli.main", "review"]
    out = subprocess.run(cli + ["failures", "--json"], capture_output=True, text=True, cwd=ROOT)
    [row] = [json.loads(x) for x in out.stdout.splitlines()]
    assert set(row) == {"card_number", "hold_id", "reason", "misconfigured_recipient",
                        "permanent", "diagnostic", "advice", "at", "sender_problem"}
    assert row["sender_problem"] is False
    r = subprocess.run(cli + ["reenable", "C1", "--staff", "S05", "--reason", "アドレス確認済み"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert patron(s, "C1")["state"] == "active"
    again = subprocess.run(cli + ["reenable", "C1", "--staff", "S05", "--reason", "x"],
                           capture_output=True, text=True, cwd=ROOT)
    # a repeat (issue 19): in use already, nothing changed, exit 0
    assert again.returncode == 0 and "in use already" in again.stdout, again.stderr
    h = with_store(s, lambda st: st.history("C1"))[-1]
    assert h["what"] == "address re-enabled" and h["staff"] == "S05"
