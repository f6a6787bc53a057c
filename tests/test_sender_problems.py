"""Our faults are ours (issue 20): a failure the sender caused never blames or suspends a
patron, keeps the hold's call-list fallback, and shows once for staff.

Real Redis, a real worker and a real SMTP server (aiosmtpd) that refuses as Gmail does
when SPF fails; the staff page through Starlette's test client.
"""

from __future__ import annotations

import argparse

import pytest

from tests.helpers import hold_event, variant, with_store
from tests.test_bounce_handling import active, failures, hold, patron, send_and_wait
from tests.test_web import act, client_for, flash, logged_in
from worker.app import sender_problems
from worker.web.wording import ERROR_JA

GMAIL_SPF = ("550 5.7.26 This mail has been blocked because the sender is unauthenticated. "
             "Gmail requires all senders to authenticate with either SPF or DKIM.")


@pytest.fixture
def s(settings, smtp_sink, clean_redis, tmp_path):
    return variant(settings, mail={"transport": "smtp", "outbox_dir": tmp_path / "out"},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5},
                   bounces={"threshold": 2})


def alert(s):
    return with_store(s, sender_problems.current)


def test_an_authentication_failure_never_blames_or_suspends_the_patron(s, smtp_sink):
    for card, address in (("C1", "taro@gmail.com"), ("C2", "hanako@docomo.ne.jp")):
        active(s, card, address)
        smtp_sink.refuse(address, GMAIL_SPF)
    # more refusals than the threshold of points: still no suspension
    send_and_wait(s, *(hold_event(f"H{i}", "C1") for i in range(3)),
                  hold_event("H9", "C2"), status="phoned")
    rows = failures(s)
    assert len(rows) == 4
    for row in rows:
        assert row["reason"] == "authfailure" and row["sender_problem"] is True
        assert row["misconfigured_recipient"] is False
        assert "DNS管理者" in row["advice"] and "受信設定" not in row["advice"]
        assert "許可" not in row["advice"]  # no "allow mail from …" for the patron
    assert patron(s, "C1")["state"] == "active" and patron(s, "C2")["state"] == "active"
    scores = with_store(s, lambda st: st.r.keys(st.k.bounce_score("*")))
    assert scores == []
    # the holds keep their fallback: the call list
    assert {c["hold_id"] for c in with_store(s, lambda st: st.calls())} == {"H0", "H1", "H2", "H9"}
    assert hold(s, "H0")["status"] == "phoned"
    a = alert(s)
    assert a["count"] == 4 and a["patrons"] == 2 and a["reason"] == "authfailure"


def test_the_failures_page_shows_it_once_at_the_top(s, smtp_sink):
    for card, address in (("C1", "taro@gmail.com"), ("C2", "hanako@docomo.ne.jp")):
        active(s, card, address)
        smtp_sink.refuse(address, GMAIL_SPF)
    active(s, "C3", "nobody@example.jp")
    smtp_sink.refuse("nobody@example.jp", "550 5.1.1 <nobody@example.jp>: User unknown")
    send_and_wait(s, hold_event("H1", "C1"), hold_event("H2", "C1"), hold_event("H3", "C2"),
                  hold_event("H4", "C3"), status="phoned")
    with client_for(s) as web:
        logged_in(s, web)
        html = web.get("/failures").text
        assert html.count("図書館側の問題") == 1
        assert "影響を受けた利用者 <b>2人</b>(不達 3件)" in html
        assert "市のDNS管理者に依頼すること" in html
        top = html.index('id="sender-problem"')
        assert top < html.index("カード <a href=\"/patron?card=C3")  # above the patrons' rows
        assert "card=C1" not in html and "card=C2" not in html  # no row per patron
        assert "対応待ち 1件" in html
        page = act(web, "/failures/sender-fixed")
        assert "図書館側の問題" not in page.text
        # a second click (another tab): done already, nothing written again
        assert flash(act(web, "/failures/sender-fixed")) == (
            "ok: " + ERROR_JA["already_sender_fixed"])
    assert alert(s) is None
    closings = with_store(s, lambda st: st.sender_problems.closings())
    assert [(c["staff"], c["count"], c["patrons"]) for c in closings] == [("S01", 3, 2)]


def test_review_failures_and_check_show_it(s, smtp_sink, capsys):
    from worker.cli.ops import _last_sender_problem
    from worker.cli.review import cmd_failures

    assert _last_sender_problem(s) == 0
    active(s, "C1", "taro@gmail.com")
    smtp_sink.refuse("taro@gmail.com", GMAIL_SPF)
    send_and_wait(s, hold_event("H1", "C1"), hold_event("H2", "C1"), status="phoned")
    capsys.readouterr()
    assert _last_sender_problem(s) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL  sender    SENDER PROBLEM") and "1 patron(s) affected" in out
    cmd_failures(argparse.Namespace(json=False), s)
    out = capsys.readouterr().out
    assert out.count("SENDER PROBLEM") == 1 and "(none)" in out and "伝えること" not in out
    cmd_failures(argparse.Namespace(json=True), s)
    rows = [line for line in capsys.readouterr().out.splitlines() if line]
    assert len(rows) == 2 and all('"sender_problem": true' in r for r in rows)


def test_a_patron_filter_with_evidence_is_still_the_patrons(s, smtp_sink):
    active(s, "C1", "taro@docomo.ne.jp")
    smtp_sink.refuse("taro@docomo.ne.jp",
                     "550 5.7.1 <taro@docomo.ne.jp>: rejected by recipient's filter")
    send_and_wait(s, hold_event("H1", "C1"), status="phoned")
    [row] = failures(s)
    assert row["misconfigured_recipient"] is True and row["sender_problem"] is False
    assert patron(s, "C1")["state"] == "suspended" and alert(s) is None


def test_a_blocked_ip_until_the_retry_horizon_raises_the_alert_too(s, smtp_sink):
    """4xx "our IP is blocked" until no retry is left: the hold is phoned, the row is a
    sender problem — and since the page shows such rows only through the alert, the alert
    must be raised here as well."""
    from datetime import timedelta

    from worker.jdate import now_tokyo
    soon = (now_tokyo() + timedelta(days=1)).date().isoformat()
    active(s, "C1", "taro@example.jp")
    smtp_sink.refuse("taro@example.jp",
                     "421 4.7.0 [192.0.2.25] Our system has detected an unusual rate of "
                     "unsolicited mail originating from your IP address")
    send_and_wait(s, hold_event("H1", "C1", pickup_by=soon), status="phoned")
    [row] = failures(s)
    assert row["sender_problem"] is True and row["reason"] == "blocked"
    assert patron(s, "C1")["state"] == "active"
    a = alert(s)
    assert a is not None and a["patrons"] == 1 and a["reason"] == "blocked"
