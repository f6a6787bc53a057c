"""Issue 10: VERP return paths — each notice's envelope sender names it, so its bounce
does, even a carrier's plain-text bounce that quotes nothing of the original."""

from __future__ import annotations

import email
import email.policy

import pytest
from hypothesis import given, strategies as st

from tests.helpers import hold_event, run_worker, variant, wait_for, with_store
from tests.test_bounce_handling import active, failures, hold, patron, send_and_wait
from worker.app.ingest import ingest_one
from worker.mail.verp import new_return_token, return_path, token_in
from worker.settings import check_return_path as check_template

TEMPLATE = "bounce+{token}@city.omitama.ibaraki.jp"


@pytest.mark.parametrize("bad", ["bounce@city.omitama.ibaraki.jp", "bounce+{token}",
                                 "{token}{token}@x.jp", "b+x@{token}.jp", "b <{token}@x.jp>",
                                 "b+{token}@x.jp\r\nBcc: y@z"])
def test_a_return_path_without_one_token_before_the_at_is_refused(bad):
    with pytest.raises(ValueError):
        check_template(bad)
    assert check_template(TEMPLATE) == TEMPLATE and check_template("") == ""


@given(st.booleans(), st.booleans())
def test_token_round_trip_survives_case_changes_and_angle_brackets(upper, brackets):
    token = new_return_token()
    addr = return_path(TEMPLATE, token)
    addr = addr.upper() if upper else addr
    addr = f"<{addr}>" if brackets else addr
    assert token_in(TEMPLATE, ["lib@city.omitama.ibaraki.jp", addr]) == token
    assert token_in(TEMPLATE, ["bounce+" + "0" * 31 + "@city.omitama.ibaraki.jp"]) is None
    assert token_in("", [addr]) is None


@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp", "return_path": TEMPLATE},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5},
                   bounces={"token_days": 10})


def carrier_bounce(to: str, envelope_header: str = "Delivered-To") -> bytes:
    """docomo-style plain text: no DSN, no Message-ID of ours, only the return path."""
    return (f"Return-Path: <>\r\n{envelope_header}: {to}\r\n"
            f"From: MAILER-DAEMON@docomo.ne.jp\r\nTo: {to}\r\nSubject: Returned mail\r\n"
            f"Message-ID: <c1@docomo.ne.jp>\r\n\r\n"
            f"This is the mail system at host mx.docomo.ne.jp.\r\n\r\nI'm sorry to have to "
            f"inform you that your message could not\r\nbe delivered to one or more "
            f"recipients.\r\n\r\n<taro@docomo.ne.jp>: host mx said: 550 5.7.1 "
            f"rejected by recipient's filter\r\n").encode()


def ingest(s, raw: bytes, name: str = "mail") -> list[dict]:
    return with_store(s, lambda st: ingest_one(st, s, name, raw))


def test_notice_goes_out_with_its_own_return_path_and_its_bounce_is_traced_by_it(s, smtp_sink):
    active(s, "C1", "taro@docomo.ne.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    [m] = smtp_sink.messages
    token = token_in(TEMPLATE, [m.mail_from])
    assert token and m.mail_from == return_path(TEMPLATE, token)
    header = email.message_from_bytes(m.data, policy=email.policy.default)
    assert header["From"].addresses[0].addr_spec == "lib@city.omitama.ibaraki.jp"
    ttl = with_store(s, lambda st: st.r.ttl(st.k.verp(token)))
    assert 10 * 86400 - 60 < ttl <= 10 * 86400
    [row] = ingest(s, carrier_bounce(m.mail_from))
    assert (row["traced"], row["trust"], row["hold_id"], row["card_number"]) == (
        "verp", "verified", "H1", "C1")
    assert row["reason"] == "filtered" and row["suspended"] == ["C1"]
    assert row["hold_action"] == "phoned" and hold(s, "H1")["status"] == "phoned"
    [f] = failures(s)
    assert (f["traced"], f["verified"], f["hold_id"]) == ("verp", True, "H1")
    assert "受信リスト設定" in f["advice"]


def test_a_token_we_never_issued_is_unverified_even_in_a_perfect_report(s, smtp_sink):
    active(s, "C1", "taro@docomo.ne.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    forged = carrier_bounce(return_path(TEMPLATE, new_return_token()), "X-Original-To")
    [row] = ingest(s, forged)
    assert row["trust"] == "unverified" and "token" in row["evidence"]
    assert row["suspended"] == [] and patron(s, "C1")["state"] == "active"
    assert hold(s, "H1")["status"] == "sent"


def test_return_path_off_by_default_keeps_the_from_address(settings, smtp_sink, clean_redis):
    assert settings.mail.return_path == ""
    s = variant(settings, mail={"transport": "smtp"},
                smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5})
    active(s, "C1", "taro@example.jp")
    send_and_wait(s, hold_event("H1", "C1"))
    assert smtp_sink.messages[0].mail_from == "lib@city.omitama.ibaraki.jp"
    assert with_store(s, lambda st: st.r.keys(st.k.verp("*"))) == []


def test_confirmation_mail_bounce_is_traced_to_the_registration(s, smtp_sink):
    from worker.queue.actors import address_registered
    with run_worker(s):
        address_registered.send({"event_id": "r1", "type": "address_registered",
                                 "card_number": "C9", "email": "nobody@example.jp",
                                 "registered_at": "2026-11-29T09:30:00+09:00",
                                 "application_branch": "minori"})
        wait_for(lambda: smtp_sink.messages)
    [m] = smtp_sink.messages
    assert token_in(TEMPLATE, [m.mail_from])
    bounce = carrier_bounce(m.mail_from).replace(
        b"550 5.7.1 rejected by recipient's filter", b"550 5.1.1 User unknown")
    [row] = ingest(s, bounce)
    assert (row["traced"], row["trust"], row["card_number"]) == ("verp", "verified", "C9")
    assert patron(s, "C9")["confirmation"] == "bounced"
    [f] = failures(s)
    assert f["card_number"] == "C9" and f["reason"] == "userunknown"
