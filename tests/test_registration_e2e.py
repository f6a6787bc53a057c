"""Registration → confirmation mail with a code → staff approval → hold notices by mail.

Real Redis, a real dramatiq worker, a real SMTP server; staff act through the CLI's
functions (the same ones the web page will use).
"""

from __future__ import annotations

import email
import email.policy
import re

import pytest

from tests.helpers import hold_event, queue_empty, run_worker, variant, wait_for, with_store
from worker.app import registration
from worker.errors import AlreadyDone, ReviewError


@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 1, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})


def reg_event(card: str, address: str, event_id: str = "r1", branch: str = "minori") -> dict:
    return {"event_id": event_id, "type": "address_registered", "card_number": card,
            "email": address, "registered_at": "2026-11-29T09:30:00+09:00",
            "application_branch": branch}


def register(s, smtp_sink, card: str, address: str, event_id: str = "r1", mails: int = 1):
    from worker.queue.actors import address_registered
    with run_worker(s):
        address_registered.send(reg_event(card, address, event_id))
        wait_for(lambda: len(smtp_sink.messages) >= mails or rejected(s))


def rejected(s) -> list[dict]:
    return with_store(s, lambda st: st.rejected())


def code_in(message) -> str:
    body = email.message_from_bytes(message.data, policy=email.policy.default).get_content()
    [code] = re.findall(r"^(\d{6})$", body, re.M)
    return code


def state(s, card: str) -> dict:
    return with_store(s, lambda st: st.r.hgetall(st.k.patron(card)))


def approve(s, card: str, **kw):
    return with_store(s, lambda st: registration.approve(st, s, card, "S01", **kw))


def test_register_confirm_approve_then_hold_goes_by_mail(s, smtp_sink):
    register(s, smtp_sink, "C1", "hanako@ezweb.ne.jp")
    [conf] = smtp_sink.messages
    msg = email.message_from_bytes(conf.data, policy=email.policy.default)
    assert conf.rcpt_tos == ["hanako@ezweb.ne.jp"]
    assert msg["Subject"] == "【小美玉市立図書館】メールアドレス登録の受付番号"
    body = msg.get_content()
    assert "美野里公民館図書室" in body and "0299-48-1110" in body
    assert "迷惑メールフィルター" in body and "lib@city.omitama.ibaraki.jp" in body
    code = code_in(conf)
    # the code is stored only as a hash
    assert code not in str(state(s, "C1"))
    [pending] = with_store(s, lambda st: registration.pending_view(st, s))
    assert pending["card_number"] == "C1" and pending["email"] == "hanako@ezweb.ne.jp"
    assert pending["application_branch"] == "minori" and pending["carrier"] == "au"
    assert pending["confirmation"] == "sent" and pending["code"] == "valid"
    assert "受信リスト" in pending["read_on_call"]
    approve(s, "C1", code=code)
    assert state(s, "C1")["state"] == "active"
    assert with_store(s, lambda st: registration.pending_view(st, s)) == []
    from worker.queue.actors import hold_ready
    with run_worker(s):
        hold_ready.send(hold_event("H1", "C1"))
        wait_for(lambda: len(smtp_sink.messages) == 2)
    assert smtp_sink.messages[1].rcpt_tos == ["hanako@ezweb.ne.jp"]
    history = with_store(s, lambda st: st.history("C1"))
    assert [h["state"] for h in history] == ["pending", "active"]
    assert history[1]["staff"] == "S01" and "code checked" in history[1]["what"]


def test_wrong_code_counts_down_then_locks(s, smtp_sink):
    register(s, smtp_sink, "C2", "taro@docomo.ne.jp")
    code = code_in(smtp_sink.messages[0])
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        with pytest.raises(ReviewError, match=f"wrong code for card C2; {left} tries left"):
            approve(s, "C2", code=wrong)
    with pytest.raises(ReviewError, match="the code is now locked"):
        approve(s, "C2", code=wrong)
    with pytest.raises(ReviewError, match="locked after 5 wrong tries"):
        approve(s, "C2", code=code)  # even the right one, once locked
    assert state(s, "C2")["state"] == "pending"
    approve(s, "C2", reason="本人確認済み(来館)", shown="taro@docomo.ne.jp")
    assert state(s, "C2")["state"] == "active"
    assert "WITHOUT the code" in with_store(s, lambda st: st.history("C2"))[-1]["what"]


def test_expired_code_is_refused(s, smtp_sink):
    register(s, smtp_sink, "C3", "taro@softbank.ne.jp")
    code = code_in(smtp_sink.messages[0])
    with_store(s, lambda st: st.r.hset(st.k.patron("C3"), "code_expires_ms", 1))
    with pytest.raises(ReviewError, match="has expired"):
        approve(s, "C3", code=code)
    [p] = with_store(s, lambda st: registration.pending_view(st, s))
    assert p["code"] == "expired"


def test_not_pending_and_no_reason_are_refused(s, smtp_sink):
    with pytest.raises(ReviewError, match="card C9 is not awaiting approval \\(its state is none\\)"):
        approve(s, "C9", code="123456")
    register(s, smtp_sink, "C4", "a@example.jp")
    with pytest.raises(ReviewError, match="needs a reason"):
        approve(s, "C4", reason="  ")


def test_reject_returns_to_previous_state(s, smtp_sink):
    register(s, smtp_sink, "C5", "old@docomo.ne.jp")
    approve(s, "C5", code=code_in(smtp_sink.messages[0]))
    # re-registration while active keeps the old address in use until approved
    register(s, smtp_sink, "C5", "new@ezweb.ne.jp", event_id="r2", mails=2)
    rec = state(s, "C5")
    assert rec["state"] == "pending" and rec["address"] == "old@docomo.ne.jp"
    from worker.queue.actors import hold_ready
    with run_worker(s):
        hold_ready.send(hold_event("H5", "C5"))
        wait_for(lambda: len(smtp_sink.messages) == 3)
    assert smtp_sink.messages[2].rcpt_tos == ["old@docomo.ne.jp"]
    with_store(s, lambda st: registration.reject(st, "C5", "S02", "番号が確認できない",
                                                 shown="r2"))
    rec = state(s, "C5")
    assert rec["state"] == "active" and rec["address"] == "old@docomo.ne.jp"
    assert "pending_address" not in rec
    with pytest.raises(AlreadyDone, match="rejected already"):  # a repeat: nothing changed
        with_store(s, lambda st: registration.reject(st, "C5", "S02", "again", shown="r2"))


def test_second_registration_replaces_the_first_code(s, smtp_sink):
    register(s, smtp_sink, "C6", "first@example.jp")
    first = code_in(smtp_sink.messages[0])
    register(s, smtp_sink, "C6", "second@example.jp", event_id="r2", mails=2)
    second = code_in(smtp_sink.messages[1])
    if first != second:
        with pytest.raises(ReviewError, match="wrong code"):
            approve(s, "C6", code=first)
    approve(s, "C6", code=second)
    assert state(s, "C6")["address"] == "second@example.jp"
    assert with_store(s, lambda st: st.contacts.cards_with("first@example.jp")) == set()


def test_duplicate_registration_event_sends_one_mail(s, smtp_sink):
    from worker.queue.actors import address_registered
    with run_worker(s):
        for _ in range(3):
            address_registered.send(reg_event("C7", "dup@example.jp", "same-event"))
        wait_for(lambda: smtp_sink.messages)
        wait_for(lambda: queue_empty(s))  # all three handled, not just the first
    assert len(smtp_sink.messages) == 1


def test_removal_goes_back_to_none(s, smtp_sink):
    from worker.queue.actors import address_removed
    register(s, smtp_sink, "C8", "gone@example.jp")
    approve(s, "C8", code=code_in(smtp_sink.messages[0]))
    with run_worker(s):
        address_removed.send({"event_id": "rm1", "type": "address_removed", "card_number": "C8",
                              "removed_at": "2026-11-30T08:00:00+09:00"})
        wait_for(lambda: state(s, "C8").get("state") == "none")
    assert "address" not in state(s, "C8")
    assert with_store(s, lambda st: st.contacts.cards_with("gone@example.jp")) == set()


def test_legacy_carrier_address_received_quoted_on_the_wire(s, smtp_sink):
    register(s, smtp_sink, "C9", "taro..yamada@docomo.ne.jp")
    [m] = smtp_sink.messages
    assert m.rcpt_wire == ['TO:<"taro..yamada"@docomo.ne.jp>']
    assert m.rcpt_tos == ["taro..yamada@docomo.ne.jp"]  # aiosmtpd unquotes what it stores
    [p] = with_store(s, lambda st: registration.pending_view(st, s))
    assert p["email"] == "taro..yamada@docomo.ne.jp"


def test_full_width_input_and_typo_hint(s, smtp_sink):
    register(s, smtp_sink, "C10", "ｔａｒｏ＠ｄｏｃｏｍｏ．ｃｏ．ｊｐ")
    assert smtp_sink.messages[0].rcpt_tos == ["taro@docomo.co.jp"]
    [p] = with_store(s, lambda st: registration.pending_view(st, s))
    assert p["typo_suggestion"] == "taro@docomo.ne.jp"


def test_family_sharing_an_address_is_shown(s, smtp_sink):
    register(s, smtp_sink, "C11", "family@example.jp")
    register(s, smtp_sink, "C12", "FAMILY@EXAMPLE.JP".replace("EXAMPLE.JP", "example.jp").lower(),
             event_id="r12", mails=2)
    rows = {p["card_number"]: p for p in with_store(s, lambda st: registration.pending_view(st, s))}
    assert rows["C11"]["shared_with"] == ["C12"] and rows["C12"]["shared_with"] == ["C11"]


@pytest.mark.parametrize("address,words", [
    ("taro@docomo.ne.jp\r\nBcc: evil@example.jp", "line break"),
    ("a" * 290 + "@example.jp", "too long"),
    ("山田@example.jp", "ASCII"),
    ("not-an-address", "@"),
])
def test_invalid_address_is_refused_and_state_kept(s, smtp_sink, address, words):
    register(s, smtp_sink, "C13", "keep@example.jp")
    approve(s, "C13", code=code_in(smtp_sink.messages[0]))
    register(s, smtp_sink, "C13", address, event_id="bad", mails=2)
    [row] = rejected(s)
    assert row["event_id"] == "bad" and row["error"].startswith("email:")
    assert row["kind"] == "refused_address"
    assert words.lower() in row["error"].lower()
    rec = state(s, "C13")
    assert rec["state"] == "active" and rec["address"] == "keep@example.jp"
    assert len(smtp_sink.messages) == 1
    assert "address refused" in with_store(s, lambda st: st.history("C13"))[-1]["what"]


def test_code_is_good_through_the_whole_day_the_mail_names(s, smtp_sink, monkeypatch):
    # the mail says 有効期限：12月14日(月)まで; the code used to die 14 days after
    # registering, to the minute — in the morning of the day the patron was promised
    from datetime import datetime, timedelta

    from worker.jdate import TOKYO, ja_date
    register(s, smtp_sink, "C7", "taro@docomo.ne.jp")
    body = email.message_from_bytes(smtp_sink.messages[0].data,
                                    policy=email.policy.default).get_content()
    [named] = re.findall(r"^有効期限：(\d+月\d+日\(.\))まで$", body, re.M)
    day = (datetime.now(TOKYO) + timedelta(days=s.registration.code_ttl_days)).date()
    assert named == ja_date(day)
    code = code_in(smtp_sink.messages[0])
    last_minute = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=TOKYO)
    at = {"ms": int((last_minute + timedelta(seconds=1)).timestamp() * 1000)}
    monkeypatch.setattr(registration, "now_ms", lambda: at["ms"])  # 00:00 the next day
    with pytest.raises(ReviewError, match="has expired"):
        approve(s, "C7", code=code)
    at["ms"] = int(last_minute.timestamp() * 1000) + 999  # 23:59:59.999 of the named day
    approve(s, "C7", code=code)
    assert state(s, "C7")["state"] == "active"


def test_code_expiry_is_the_end_of_the_named_day_at_any_time_of_registering():
    from datetime import datetime, timedelta

    from worker.contact.codes import code_expired, code_expiry
    from worker.jdate import TOKYO, ja_date
    start = datetime(2026, 11, 29, 0, 0, tzinfo=TOKYO)
    for minutes in range(0, 24 * 60, 7):  # every 7 minutes of a day, midnight included
        registered = start + timedelta(minutes=minutes)
        for ttl in (14, 1, 0.5):
            expiry = code_expiry(registered, ttl)
            named = registered + timedelta(days=ttl)
            assert ja_date(expiry) == ja_date(named)
            end = int(expiry.timestamp() * 1000)
            next_midnight = datetime.combine(named.date() + timedelta(days=1),
                                             datetime.min.time(), TOKYO)
            assert not code_expired(end, int(next_midnight.timestamp() * 1000) - 60_000)
            assert code_expired(end, int(next_midnight.timestamp() * 1000))
