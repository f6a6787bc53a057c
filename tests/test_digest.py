"""Digest mail (issue 13, item 1): a card's holds ready at one branch within
``[digest] gather_s`` go out as one mail; per hold the guarantee is unchanged — each
hold in exactly one mail or on the call list once. Real Redis, real dramatiq worker,
real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import email.policy
import time
from collections import Counter

import pytest

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from tests.test_bounce_handling import dsn, ingest
from worker.contact import ContactState
from worker.mail.linewrap import MAIL_COLUMNS, columns

WINDOW_S = 2.0


@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 5},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": 5},
                   digest={"gather_s": WINDOW_S})


def active(s, card: str, address: str) -> None:
    with_store(s, lambda st: set_contact(st, card, ContactState.ACTIVE, address=address))


def hold(s, hold_id: str) -> dict:
    return with_store(s, lambda st: st.get_hold(hold_id))


def send(event: dict) -> None:
    from worker.queue.actors import hold_ready
    hold_ready.send(event)


def decoded(m) -> email.message.EmailMessage:
    return email.message_from_bytes(m.data, policy=email.policy.default)


def outcomes(rclient, s) -> list[dict]:
    return [f for _, f in rclient.xrange(f"{s.redis.key_prefix}outcomes")]


def book(title: str, author: str | None = None) -> dict:
    return {"title": title, "material": "book", **({"author": author} if author else {})}


def test_three_holds_in_the_window_one_mail_a_fourth_after_it_its_own(s, smtp_sink, rclient):
    active(s, "C1", "taro@docomo.ne.jp")
    with run_worker(s):
        t0 = time.monotonic()
        send(hold_event("H1", "C1", item=book("吾輩は猫である", "夏目漱石"), pickup_by="2099-12-05"))
        send(hold_event("H2", "C1", item=book("坊っちゃん"), pickup_by="2099-12-03"))
        send(hold_event("H3", "C1", item=book("こころ", "夏目漱石"), pickup_by="2099-12-05"))
        wait_for(lambda: smtp_sink.messages)
        took = time.monotonic() - t0
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h in ("H1", "H2", "H3")))
        send(hold_event("H4", "C1", item=book("三四郎")))
        wait_for(lambda: len(smtp_sink.messages) == 2, timeout=WINDOW_S + 10)
    assert WINDOW_S - 0.5 < took < WINDOW_S + 3  # the first hold waits the window, no more
    first, second = (decoded(m) for m in smtp_sink.messages)
    assert first["Subject"] == "【小美玉市立図書館】ご予約の資料3点をご用意しました"
    body = first.get_content()
    # every item, by last day (earliest first), the branch once
    assert body.index("坊っちゃん") < body.index("吾輩は猫である") < body.index("こころ")
    assert body.count("小川図書館") == 1 and "最も早いものは12月3日(木)まで" in body
    assert all(columns(line) <= MAIL_COLUMNS for line in body.splitlines()), body
    mid = first["Message-ID"]
    assert {hold(s, h)["message_id"] for h in ("H1", "H2", "H3")} == {mid}
    mailed = [o for o in outcomes(rclient, s) if o["outcome"] == "mailed"]
    assert sorted((o["hold_id"], o["message_id"]) for o in mailed[:3]) == [
        ("H1", mid), ("H2", mid), ("H3", mid)]
    # the fourth came after the window: a mail of its own, exactly today's notice
    assert second["Subject"] == "【小美玉市立図書館】ご予約の資料をご用意しました"
    assert "三四郎" in second.get_content() and hold(s, "H4")["message_id"] == second["Message-ID"]


def test_a_restart_mid_window_still_sends_one_mail_on_time(s, smtp_sink):
    active(s, "C1", "taro@docomo.ne.jp")
    slow = variant(s, digest={"gather_s": 4})
    with run_worker(slow):
        t0 = time.monotonic()
        send(hold_event("H1", "C1"))
        send(hold_event("H2", "C1", item=book("坊っちゃん")))
        wait_for(lambda: all(hold(s, h).get("gather") for h in ("H1", "H2")))
    assert smtp_sink.messages == []  # stopped mid-window
    with run_worker(slow):
        wait_for(lambda: smtp_sink.messages, timeout=20)
        took = time.monotonic() - t0
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h in ("H1", "H2")))
    [m] = smtp_sink.messages
    assert "2点" in decoded(m)["Subject"]
    assert took < 4 + 5, took


def test_cancelled_during_the_window_and_mixed_contact_choices(s, smtp_sink, rclient):
    active(s, "C1", "taro@docomo.ne.jp")
    with run_worker(s):
        send(hold_event("H1", "C1"))
        send(hold_event("H2", "C1", item=book("坊っちゃん")))
        send(hold_event("H3", "C1", item=book("こころ"), contact="phone"))  # chose phone
        send(hold_event("H4", "C1", item=book("三四郎")))
        wait_for(lambda: hold(s, "H2").get("gather") and hold(s, "H3").get("status") == "phoned")
        with_store(s, lambda st: st.close_hold("H2", "cancelled", ttl_s=60))
        wait_for(lambda: smtp_sink.messages)
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h in ("H1", "H4")))
    [m] = smtp_sink.messages
    body = decoded(m).get_content()
    assert "2点" in decoded(m)["Subject"] and "三四郎" in body and "坊っちゃん" not in body
    assert "こころ" not in body
    assert hold(s, "H2")["status"] == "cancelled"
    assert [c["hold_id"] for c in with_store(s, lambda st: st.calls())] == ["H3"]
    per_hold = Counter((o["hold_id"], o["outcome"]) for o in outcomes(rclient, s))
    assert per_hold == Counter({("H1", "mailed"): 1, ("H4", "mailed"): 1, ("H3", "listed"): 1,
                                ("H2", "cancelled"): 1})


def test_a_hold_joined_at_its_claim_then_listed_is_listed_once_and_mailed_never(
        s, smtp_sink, rclient):
    """An event wanting e-mail joins its window in the claim's own call, before the
    decision (worker/app/digest.py ``join_asked``). When the patron's address is not
    approved (pending) or the last day has passed, the decision lists the hold: it leaves
    the window it joined (or opened), whose take finds nothing to mail."""
    with_store(s, lambda st: set_contact(st, "C-P", ContactState.PENDING,
                                         address="wait@example.jp"))
    active(s, "C1", "taro@docomo.ne.jp")
    with run_worker(s):
        send(hold_event("H-P", "C-P"))  # pending: the call list
        send(hold_event("H-L", "C1", pickup_by="2020-01-01"))  # its last day passed
        send(hold_event("H1", "C1", item=book("こころ")))  # the card's window goes on
        wait_for(lambda: hold(s, "H-P").get("status") == "phoned"
                 and hold(s, "H-L").get("status") == "phoned")
        assert hold(s, "H-L").get("gather")  # it had joined (and opened) a window
        assert not hold(s, "H-P").get("gather")  # not approved: its claim joined nothing
        wait_for(lambda: hold(s, "H1").get("status") == "sent", timeout=WINDOW_S + 10)
        wait_for(lambda: rclient.zcard(f"{s.redis.key_prefix}gather_due") == 0, timeout=10)
        time.sleep(0.5)  # not a sync: lets a stray mail show up before we count
    [m] = smtp_sink.messages
    assert m.rcpt_tos == ["taro@docomo.ne.jp"] and "こころ" in decoded(m).get_content()
    assert "吾輩は猫である" not in decoded(m).get_content()  # H-L's title
    per_hold = Counter((o["hold_id"], o["outcome"]) for o in outcomes(rclient, s))
    assert per_hold == Counter({("H-P", "listed"): 1, ("H-L", "listed"): 1, ("H1", "mailed"): 1})
    assert {c["hold_id"] for c in with_store(s, lambda st: st.calls())} == {"H-P", "H-L"}


def test_redelivered_events_and_many_patrons_no_hold_in_two_mails(s, smtp_sink):
    """Two cards, two branches, every event sent three times, some after the window:
    every hold is in exactly one mail, and each mail is one card at one branch."""
    for card in ("C1", "C2"):
        active(s, card, f"{card.lower()}@example.jp")
    plan = [(f"H{i}", f"C{1 + i % 2}", ("ogawa", "tamari")[i // 2 % 2]) for i in range(8)]
    with run_worker(s, threads=8):
        for hold_id, card, branch in plan:
            for _ in range(3):
                send(hold_event(hold_id, card, pickup_branch=branch,
                                item=book(f"本-{hold_id}")))
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h, _, _ in plan),
                 timeout=30)
        send(hold_event("H9", "C1", item=book("本-H9")))  # after the window
        send(hold_event("H9", "C1", item=book("本-H9")))
        wait_for(lambda: hold(s, "H9").get("status") == "sent", timeout=20)
        time.sleep(0.5)  # not a sync: lets a wrong second mail show up before we count
    seen = Counter()
    for m in smtp_sink.messages:
        body = decoded(m).get_content()
        titles = [h for h, _, _ in plan + [("H9", "", "")] if f"本-{h}\n" in body]
        assert titles, body
        seen.update(titles)
        assert len({(c, b) for h, c, b in plan + [("H9", "C1", "ogawa")] if h in titles}) == 1
    assert seen == Counter({h: 1 for h in [p[0] for p in plan] + ["H9"]})
    assert len(smtp_sink.messages) == 5  # 4 (card, branch) pairs, then H9


def test_a_refused_digest_and_a_later_bounce_list_every_hold_in_it(s, smtp_sink, tmp_path):
    active(s, "C1", "taro@docomo.ne.jp")
    active(s, "C2", "bad@ezweb.ne.jp")
    smtp_sink.refuse("bad@ezweb.ne.jp", "550 5.1.1 <bad@ezweb.ne.jp>: user unknown")
    with run_worker(s):
        for h, c in (("H1", "C1"), ("H2", "C1"), ("H3", "C2"), ("H4", "C2")):
            send(hold_event(h, c, item=book(f"本-{h}")))
        wait_for(lambda: hold(s, "H1").get("status") == "sent"
                 and hold(s, "H3").get("status") == "phoned"
                 and hold(s, "H4").get("status") == "phoned")
    listed = {c["hold_id"]: c["reason"] for c in with_store(s, lambda st: st.calls())}
    assert listed == {"H3": "bounced", "H4": "bounced"}
    # a bounce mail quoting the digest's Message-ID: both of its holds go on the list
    [m] = smtp_sink.messages
    f = tmp_path / "b.eml"
    f.write_bytes(dsn(m.data, "taro@docomo.ne.jp", "5.1.1", "550 5.1.1 user unknown"))
    [row] = ingest(str(f))
    assert row["traced"] == "message-id" and row["hold_action"] == "phoned"
    assert {hold(s, h)["status"] for h in ("H1", "H2")} == {"phoned"}
    assert set(c["hold_id"] for c in with_store(s, lambda st: st.calls())) == {"H1", "H2", "H3", "H4"}
