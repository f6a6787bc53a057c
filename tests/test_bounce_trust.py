"""Issue 10: how far a bounce mail is believed. The rule on a table (pure), then the
forgeries an attacker would try, end to end through `bounces ingest` on real Redis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from tests.helpers import hold_event, variant, with_store
from tests.test_bounce_handling import (active, dsn, failures, hold, ingest, patron,
                                        send_and_wait)
from worker.bounces.trust import MailFacts, assess, mail_facts

REAL_DSN = dsn(None, "taro@example.jp", "5.1.1", "550 5.1.1 User unknown")


def _with_return_path(raw: bytes, rp: str) -> bytes:
    return f"Return-Path: {rp}\r\n".encode() + raw


# Postfix's plain-text wording: what a forger copies, and what the classifier knows
POSTFIX_TEXT = ("This is the mail system at host mx.evil.example.\r\n\r\nI'm sorry to have to "
                "inform you that your message could not\r\nbe delivered to one or more "
                "recipients.\r\n\r\n<taro@example.jp>: host mx said: 550 5.1.1 User unknown")


def _plain(sender: str, body: str = POSTFIX_TEXT, mid: str = "<p1@x>") -> bytes:
    return (f"From: {sender}\r\nTo: lib@city.omitama.ibaraki.jp\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\n"
            f"Message-ID: {mid}\r\n\r\n{body}\r\n").encode()


def _forged_report(sender: str) -> bytes:
    return REAL_DSN.replace(b"From: MAILER-DAEMON@mx.example.jp", f"From: {sender}".encode())


# (case, mail, traced, token, verified)
TABLE = [
    ("real DSN, null sender, our Message-ID", _with_return_path(REAL_DSN, "<>"),
     "message-id", "absent", True),
    ("real DSN, From MAILER-DAEMON, no Return-Path recorded", REAL_DSN,
     "message-id", "absent", True),
    ("real DSN from postmaster", _forged_report("Postmaster <postmaster@mx.example.jp>"),
     "message-id", "absent", True),
    ("forged DSN from an ordinary sender carrying a real Message-ID",
     _forged_report("prankster@evil.example"), "message-id", "absent", False),
    ("forged DSN: From says MAILER-DAEMON, envelope sender an ordinary one",
     _with_return_path(REAL_DSN, "<prankster@evil.example>"), "message-id", "absent", False),
    ("plain text from MAILER-DAEMON quoting our Message-ID (no report)",
     _plain("MAILER-DAEMON@mx.example.jp"), "message-id", "absent", False),
    ("forged plain text from an ordinary sender", _plain("prankster@evil.example"),
     "address", "absent", False),
    ("real DSN traced by the address only", _with_return_path(REAL_DSN, "<>"),
     "address", "absent", False),
    ("real DSN sent to a return-path token that does not exist",
     _with_return_path(REAL_DSN, "<>"), "message-id", "unknown", False),
    ("plain text to a valid return-path token (carrier format)",
     _plain("MAILER-DAEMON@docomo.ne.jp"), "verp", "valid", True),
    ("forged plain text to a valid token", _plain("prankster@evil.example"),
     "verp", "valid", True),  # the token itself is the proof: only our relay chain saw it
    ("not traced at all", _with_return_path(REAL_DSN, "<>"), "none", "absent", False),
]


@pytest.mark.parametrize("case,mail,traced,token,verified", TABLE, ids=[t[0] for t in TABLE])
def test_trust_table(case, mail, traced, token, verified):
    t = assess(traced, token, mail_facts(mail))
    assert (t.verified, t.may_suspend, t.may_rephone) == (verified, verified, verified), case
    assert t.evidence.startswith(t.label)
    assert "prankster" not in t.evidence  # ordinary senders are masked for the staff list


@given(traced=st.sampled_from(["verp", "message-id", "address", "none"]),
       token=st.sampled_from(["valid", "unknown", "absent"]),
       rp=st.one_of(st.none(), st.sampled_from(["", "mailer-daemon@x.jp", "a@b.jp"])),
       frm=st.sampled_from(["", "postmaster@x.jp", "x@y.jp"]), report=st.booleans())
def test_only_a_token_or_a_real_report_with_our_message_id_is_ever_verified(
        traced, token, rp, frm, report):
    facts = MailFacts(rp, frm, report, ())
    t = assess(traced, token, facts)
    allowed = token != "unknown" and (
        traced == "verp" or (traced == "message-id" and facts.system_sender and report))
    assert t.verified is allowed and t.may_suspend is allowed and t.may_rephone is allowed


@hsettings(max_examples=300)
@given(st.binary(max_size=3000))
def test_mail_facts_never_raise_on_any_bytes(raw):
    f = mail_facts(raw)
    assert isinstance(f.report, bool) and isinstance(f.envelope_to, tuple)


def test_multipart_report_without_a_delivery_status_part_is_no_report():
    fake = REAL_DSN.replace(b"message/delivery-status", b"text/plain")
    assert mail_facts(REAL_DSN).report and not mail_facts(fake).report


# -- end to end: the attacks of issue 10 --------------------------------------------

@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})


def test_forged_dsn_with_a_real_message_id_suspends_nothing(s, smtp_sink):
    """Issue 10: prankster@evil.example quoting a real notice's Message-ID suspended the
    card, fanned out to the family and put the mailed hold back on the call list."""
    for card in ("C1", "C2"):
        active(s, card, "family@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    forged = dsn(smtp_sink.messages[0].data, "family@example.jp", "5.7.1",
                 "550 5.7.1 rejected by recipient's filter").replace(
        b"From: MAILER-DAEMON@mx.example.jp", b"From: prankster@evil.example")
    [row] = ingest("-", stdin=_with_return_path(forged, "<prankster@evil.example>"))
    assert (row["traced"], row["trust"], row["hold_id"]) == ("message-id", "unverified", "H1")
    assert row["suspended"] == [] and row["hold_action"] is None
    assert [patron(s, c)["state"] for c in ("C1", "C2")] == ["active", "active"]
    assert hold(s, "H1")["status"] == "sent"
    assert with_store(s, lambda st: st.calls()) == []
    assert [(f["verified"], "not from a mail system" in f["evidence"]) for f in failures(s)] == [
        (False, True)] * 2
    import subprocess
    import sys
    from tests.test_bounce_handling import ROOT
    out = subprocess.run([sys.executable, "-m", "worker.cli.main", "review", "failures"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60).stdout
    assert out.count("[未確認 unverified]") == 2 and "quotes our Message-ID" in out


def test_forged_plain_text_user_unknown_suspends_nothing(s, smtp_sink):
    active(s, "C1", "taro@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    [row] = ingest("-", stdin=_plain("prankster@evil.example"))
    assert row["is_bounce"] and row["trust"] == "unverified" and row["suspended"] == []
    assert patron(s, "C1")["state"] == "active" and hold(s, "H1")["status"] == "sent"


def test_real_dsn_still_suspends_and_rephones(s, smtp_sink):
    active(s, "C1", "taro@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    real = _with_return_path(dsn(smtp_sink.messages[0].data, "taro@example.jp", "5.1.1",
                                 "550 5.1.1 User unknown"), "<>")
    [row] = ingest("-", stdin=real)
    assert row["trust"] == "verified" and row["suspended"] == ["C1"]
    assert row["hold_action"] == "phoned"
    [f] = failures(s)
    assert f["verified"] is True and f["traced"] == "message-id"


def test_a_flood_of_unverified_bounces_is_rate_limited_per_address(s, tmp_path):
    active(s, "C1", "taro@example.jp")
    limit = s.bounces.unverified_per_day
    for i in range(limit + 4):
        mail = _plain("prankster@evil.example", mid=f"<flood{i}@evil.example>")
        (tmp_path / f"{i:02}.eml").write_bytes(mail)
    rows = ingest(str(tmp_path))
    assert [r.get("action") for r in rows].count(
        "counted only (unverified, over the daily cap)") == 4
    assert len(failures(s)) == limit
    assert patron(s, "C1")["state"] == "active"


def test_a_flood_past_the_daily_cap_adds_to_a_counter_not_stored_rows(s, smtp_sink):
    """Issue 23: 300 forged bounces for one address added 300 bounce-log rows and
    `bounces:seen` entries (~540 B each, kept 90 days). Past `[bounces]
    unverified_per_day` they only count; a verified bounce is never capped."""
    from worker.app.ingest import ingest_one

    active(s, "C1", "taro@example.jp")
    cap, n = s.bounces.unverified_per_day, 300

    async def flood(st):
        for i in range(n):
            await ingest_one(st, s, f"forged-{i}",
                             _plain("prankster@evil.example", mid=f"<flood{i}@evil.example>"))
        # one more address: untraceable (no card holds it), capped on its own
        for i in range(cap + 2):
            await ingest_one(st, s, f"nobody-{i}", _plain(
                "prankster@evil.example", POSTFIX_TEXT.replace("taro@", "jiro@"),
                mid=f"<nobody{i}@evil.example>"))
        return (await st.r.llen(st.k.bounces), await st.r.scard(st.k.bounces_seen),
                await st.bounces.over_cap_count())
    rows, seen, counted = with_store(s, flood)
    assert (rows, seen) == (2 * cap, 2 * cap)
    assert counted == n - cap + 2
    assert len(failures(s)) == 2 * cap and patron(s, "C1")["state"] == "active"
    # the real report still counts in full the same day
    send_and_wait(s, hold_event("H1", "C1"))
    [row] = ingest("-", stdin=_with_return_path(dsn(
        smtp_sink.messages[0].data, "taro@example.jp", "5.1.1", "550 5.1.1 User unknown"), "<>"))
    assert row["trust"] == "verified" and row["suspended"] == ["C1"]
