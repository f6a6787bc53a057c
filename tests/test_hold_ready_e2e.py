"""hold_ready end to end: real Redis broker, real worker, real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import threading

import pytest

from tests.helpers import hold_event, queue_empty, run_worker, variant, wait_for, with_store
from tests.helpers import set_contact
from worker.contact import ContactState


@pytest.fixture
def smtp_settings(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5})


def activate(settings, card: str, envelope: str, display: str | None = None) -> None:
    async def go(store):
        await set_contact(store, card, ContactState.ACTIVE, address=display or envelope, staff="S01", why="test")
    with_store(settings, go)


def hold(settings, hold_id: str) -> dict:
    return with_store(settings, lambda s: s.get_hold(hold_id))


def calls(settings) -> list[dict]:
    return with_store(settings, lambda s: s.calls())


def send(event: dict) -> None:
    from worker.queue.actors import hold_ready
    hold_ready.send(event)


def test_active_patron_gets_one_japanese_mail(smtp_settings, smtp_sink):
    activate(smtp_settings, "C-1", "taro@docomo.ne.jp")
    with run_worker(smtp_settings):
        send(hold_event("H-1", "C-1"))
        wait_for(lambda: hold(smtp_settings, "H-1").get("status") == "sent")
    [m] = smtp_sink.messages
    assert m.mail_from == "lib@city.omitama.ibaraki.jp"
    assert m.rcpt_tos == ["taro@docomo.ne.jp"]
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert msg["Subject"] == "【小美玉市立図書館】ご予約の資料をご用意しました"
    assert msg["From"].addresses[0].display_name == "小美玉市立図書館"
    body = msg.get_content()
    assert "山田 太郎 様" in body and "吾輩は猫である" in body and "12月5日(土)まで" in body
    assert "小川図書館" in body and "0299-58-5828" in body
    assert msg["Message-ID"] == hold(smtp_settings, "H-1")["message_id"]
    assert calls(smtp_settings) == []
    # the successful delivery is recorded on the patron too
    rec = with_store(smtp_settings, lambda s: s.r.hgetall(s.k.patron("C-1")))
    assert rec["last_sent_hold"] == "H-1" and int(rec["last_sent_ms"]) > 0


@pytest.mark.parametrize("contact,state,reason", [
    ("phone", ContactState.ACTIVE, "chose_phone"),
    ("email", ContactState.NONE, "no_address"),
    ("email", ContactState.PENDING, "approval_pending"),
    ("email", ContactState.SUSPENDED, "suspended"),
])
def test_not_by_email_goes_to_the_call_list(smtp_settings, smtp_sink, contact, state, reason):
    async def go(store):
        await set_contact(store, "C-2", state, address="x@example.jp" if state is ContactState.SUSPENDED else None, why="test")
    with_store(smtp_settings, go)
    with run_worker(smtp_settings):
        send(hold_event("H-2", "C-2", contact=contact, pickup_branch="tamari"))
        wait_for(lambda: hold(smtp_settings, "H-2").get("status") == "phoned")
    [entry] = calls(smtp_settings)
    assert entry["reason"] == reason and entry["pickup_branch"] == "tamari"
    assert entry["hold_id"] == "H-2" and entry["card_number"] == "C-2"
    assert smtp_sink.messages == []


def test_duplicates_and_concurrent_redeliveries_send_once(smtp_settings, smtp_sink):
    activate(smtp_settings, "C-3", "hanako@ezweb.ne.jp")
    with run_worker(smtp_settings, threads=8):
        threads = [threading.Thread(target=send, args=(hold_event("H-3", "C-3"),))
                   for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i in range(3):
            send(hold_event("H-3", "C-3", event_id=f"dup-{i}"))
        wait_for(lambda: hold(smtp_settings, "H-3").get("status") == "sent")
        wait_for(lambda: queue_empty(smtp_settings))
    assert len(smtp_sink.messages) == 1


def test_connection_is_reused_across_messages(smtp_settings, smtp_sink):
    for i in range(20):
        activate(smtp_settings, f"C-R{i}", f"user{i}@example.jp")
    with run_worker(smtp_settings):
        for i in range(20):
            send(hold_event(f"H-R{i}", f"C-R{i}"))
        wait_for(lambda: len(smtp_sink.messages) == 20)
    # pool_size = 2: at most two TCP connections for twenty messages
    assert smtp_sink.state.connections <= 2


def test_permanent_refusal_records_failure_and_phones(smtp_settings, smtp_sink):
    activate(smtp_settings, "C-4", "nobody@docomo.ne.jp")
    smtp_sink.refuse("nobody@docomo.ne.jp", "550 5.1.1 <nobody@docomo.ne.jp>: User unknown")
    with run_worker(smtp_settings):
        send(hold_event("H-4", "C-4"))
        wait_for(lambda: hold(smtp_settings, "H-4").get("status") == "phoned")
    [entry] = calls(smtp_settings)
    assert entry["reason"] == "bounced" and "550" in entry["detail"]
    [failure] = with_store(smtp_settings, lambda s: s.failures())
    assert failure["reason"] == "userunknown" and failure["permanent"] is True
    assert failure["hold_id"] == "H-4" and failure["card_number"] == "C-4"
    assert smtp_sink.messages == []


def test_transient_refusal_is_retried_then_sent_once(smtp_settings, smtp_sink):
    activate(smtp_settings, "C-5", "grey@softbank.ne.jp")
    smtp_sink.refuse("grey@softbank.ne.jp", "451 4.7.1 Greylisted, try again", None)
    with run_worker(smtp_settings):
        send(hold_event("H-5", "C-5"))
        wait_for(lambda: hold(smtp_settings, "H-5").get("status") == "sent")
    assert len(smtp_sink.messages) == 1
    assert hold(smtp_settings, "H-5")["attempts"] == "2"


def test_transient_failures_past_the_horizon_go_to_the_call_list(smtp_settings, smtp_sink):
    # pickup window closes too soon for any retry: the hold is phoned after one try
    from datetime import timedelta
    from worker.jdate import now_tokyo
    soon = (now_tokyo() + timedelta(days=1)).date().isoformat()
    activate(smtp_settings, "C-6", "grey@example.jp")
    smtp_sink.refuse("grey@example.jp", "450 4.2.0 Mailbox busy")
    with run_worker(smtp_settings):
        send(hold_event("H-6", "C-6", pickup_by=soon))
        wait_for(lambda: hold(smtp_settings, "H-6").get("status") == "phoned")
    [entry] = calls(smtp_settings)
    assert entry["reason"] == "delivery_failed" and "450" in entry["detail"]


def test_relay_down_then_phone_when_deadline_near(smtp_settings, smtp_sink):
    from datetime import timedelta
    from worker.jdate import now_tokyo
    soon = (now_tokyo() + timedelta(days=1)).date().isoformat()
    down = variant(smtp_settings, smtp={"port": 1})  # nothing listens on port 1
    activate(down, "C-7", "a@example.jp")
    with run_worker(down):
        send(hold_event("H-7", "C-7", pickup_by=soon))
        wait_for(lambda: hold(down, "H-7").get("status") == "phoned")
    [entry] = calls(down)
    assert entry["reason"] == "delivery_failed" and "cannot connect" in entry["detail"]


def test_cancel_before_send_drops_notice_and_leaves_call_list(smtp_settings, smtp_sink):
    from worker.queue.actors import hold_cancelled, hold_picked_up
    with run_worker(smtp_settings):
        send(hold_event("H-8", "C-8", contact="phone"))
        wait_for(lambda: hold(smtp_settings, "H-8").get("status") == "phoned")
        hold_cancelled.send({"event_id": "c-8", "type": "hold_cancelled", "hold_id": "H-8"})
        wait_for(lambda: hold(smtp_settings, "H-8").get("status") == "cancelled")
        assert calls(smtp_settings) == []
        # picked up before the ready event arrived: the late event is dropped
        hold_picked_up.send({"event_id": "p-9", "type": "hold_picked_up", "hold_id": "H-9"})
        wait_for(lambda: hold(smtp_settings, "H-9").get("status") == "picked_up")
        activate(smtp_settings, "C-9", "b@example.jp")
        send(hold_event("H-9", "C-9"))
        wait_for(lambda: queue_empty(smtp_settings))
    assert smtp_sink.messages == [] and calls(smtp_settings) == []
    assert hold(smtp_settings, "H-9")["status"] == "picked_up"


def test_legacy_carrier_address_goes_quoted_on_the_wire(smtp_settings, smtp_sink):
    activate(smtp_settings, "C-10", '"taro..yamada"@docomo.ne.jp', "taro..yamada@docomo.ne.jp")
    with run_worker(smtp_settings):
        send(hold_event("H-10", "C-10"))
        wait_for(lambda: len(smtp_sink.messages) == 1)
    [m] = smtp_sink.messages
    assert m.rcpt_wire == ['TO:<"taro..yamada"@docomo.ne.jp>']
    assert b'To: <"taro..yamada"@docomo.ne.jp>' in m.data


def test_pickup_date_already_passed_goes_to_call_list(smtp_settings, smtp_sink):
    activate(smtp_settings, "C-11", "c@example.jp")
    with run_worker(smtp_settings):
        send(hold_event("H-11", "C-11", pickup_by="2020-01-10"))
        wait_for(lambda: hold(smtp_settings, "H-11").get("status") == "phoned")
    assert calls(smtp_settings)[0]["reason"] == "pickup_passed"
    assert smtp_sink.messages == []
