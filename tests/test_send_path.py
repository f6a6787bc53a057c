"""One send path (issue 18): the defects found on the way there, each as it was found.

Real Redis, a real dramatiq worker in this process, aiosmtpd on loopback. No sweeper
runs here: what these tests prove happens without it.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from tests.helpers import SEND_LEASE_S as LEASE_S
from tests.helpers import hold_event, run_worker, settings_for, variant, wait_for, with_store
from tests.test_digest import active, decoded, hold, outcomes, send
from worker.contact import ContactState

# the bound of issue 18, item 2: gather_s + lease_s + a sweep (none runs here)
WINDOW_S = 2.0


@pytest.mark.parametrize("gather_s", [0.0, WINDOW_S])
def test_two_events_for_one_hold_disagreeing_on_the_branch_end_in_one_outcome(
        settings, smtp_sink, clean_redis, rclient, gather_s):
    """Found: with a window, each event joined its own branch's window and pointed the
    hold at it; the two messages took turns skipping it and the hold never ended."""
    s = settings_for(settings, smtp_sink, gather_s)
    active(s, "C1", "taro@docomo.ne.jp")
    with run_worker(s):
        t0 = time.monotonic()
        send(hold_event("H1", "C1", pickup_branch="ogawa"))
        time.sleep(0.3)  # the second event a moment later, as found (not a sync)
        send(hold_event("H1", "C1", pickup_branch="tamari"))
        wait_for(lambda: hold(s, "H1").get("status") == "sent",
                 timeout=gather_s + LEASE_S + 4)
        took = time.monotonic() - t0
        time.sleep(1.0)  # not a sync: lets a second mail show up before we count
    assert took < gather_s + LEASE_S + 4
    [m] = smtp_sink.messages
    # the first event decides: its branch is the one in the mail
    assert "小川図書館" in decoded(m).get_content()
    assert Counter(o["outcome"] for o in outcomes(rclient, s)
                   if o["hold_id"] == "H1") == Counter({"mailed": 1})
    assert_listed_for_the_ils_team(s, "tamari")


@pytest.mark.parametrize("gather_s", [0.0, WINDOW_S])
def test_a_second_event_naming_another_card_never_mails_one_patron_the_others_hold(
        settings, smtp_sink, clean_redis, rclient, gather_s):
    """Found: with a short lease the hold went to card B's address with card A's name in
    it, while the outcome stream named card A."""
    s = settings_for(settings, smtp_sink, gather_s, lease_s=2.0)
    active(s, "CA", "taro@docomo.ne.jp")
    active(s, "CB", "hanako@example.jp")
    with run_worker(s):
        send(hold_event("H1", "CA", patron_name="山田 太郎"))
        time.sleep(0.3)  # not a sync: the second event a moment later, as found
        send(hold_event("H1", "CB", patron_name="佐藤 花子"))
        wait_for(lambda: hold(s, "H1").get("status") == "sent", timeout=gather_s + 2.0 + 4)
        # in a window, the second event waits for the window's end (the hold is retrying
        # until then: claim_hold.lua), then finds it mailed and is kept as conflicting
        wait_for(lambda: with_store(s, lambda st: st.rejected()), timeout=gather_s + 4)
        time.sleep(1.0)  # not a sync: lets a second mail show up before we count
    [m] = smtp_sink.messages
    body = decoded(m).get_content()
    assert m.rcpt_tos == ["taro@docomo.ne.jp"]
    assert "山田" in body and "佐藤" not in body
    [mailed] = [o for o in outcomes(rclient, s) if o["hold_id"] == "H1"]
    assert (mailed["outcome"], mailed["card_number"]) == ("mailed", "CA")
    assert hold(s, "H1")["card_number"] == "CA"
    assert_listed_for_the_ils_team(s, "CB")


def assert_listed_for_the_ils_team(s, named: str) -> None:
    """The event that did not decide is kept once in `review rejected`."""
    [row] = with_store(s, lambda st: st.rejected())
    assert row["kind"] == "conflicting_event" and row["type"] == "hold_ready"
    assert named in row["raw"] and "the first event of a hold decides" in row["error"]


def test_after_a_4xx_on_a_digest_every_hold_goes_round_again_and_is_gathered_again(
        settings, smtp_sink, clean_redis, rclient):
    """Found: after a 4xx, the holds whose own messages had been fenced out by the take
    had no message left; only the sweeper (not running here) brought them back."""
    s = settings_for(settings, smtp_sink, WINDOW_S)
    active(s, "C1", "taro@docomo.ne.jp")
    smtp_sink.refuse("taro@docomo.ne.jp", "451 4.3.0 try again later", None)
    ids = [f"H{i}" for i in range(1, 5)]
    with run_worker(s, threads=8):
        for h in ids:
            send(hold_event(h, "C1", item={"title": f"本-{h}", "material": "book"}))
        # window, the 4xx, a retry (≤ 0.5 s), the next window: well inside a lease more
        wait_for(lambda: all(hold(s, h).get("status") == "sent" for h in ids),
                 timeout=2 * WINDOW_S + LEASE_S + 4)
        time.sleep(1.0)  # not a sync: lets a stray mail show up before we count
    # the second attempt gathered what still belonged together: one mail for the four
    [m] = smtp_sink.messages
    assert "4点" in decoded(m)["Subject"]
    # counted as the second attempt of each (the backoff grows), though no claim came between
    assert {h: hold(s, h)["attempts"] for h in ids} == {h: "2" for h in ids}
    assert Counter(o["hold_id"] for o in outcomes(rclient, s)
                   if o["outcome"] == "mailed") == Counter({h: 1 for h in ids})


TEMPLATE = "bounce+{token}@city.omitama.ibaraki.jp"


def reminder_pass(s, at: str) -> dict:
    import asyncio
    from datetime import datetime

    from worker.app.reminders import run_pass
    from worker.runtime import Runtime

    async def go() -> dict:
        rt = Runtime.create(s)
        try:
            return await run_pass(rt, datetime.fromisoformat(at))
        finally:
            await rt.close()
    return asyncio.run(go())


def test_a_reminder_is_traced_like_a_notice_and_a_genuine_dsn_after_it_suspends(
        settings, smtp_sink, clean_redis, tmp_path, monkeypatch):
    """Found: reminders went out MAIL FROM:<lib@…> while notices had a VERP return path,
    their <remind.…> Message-IDs were not recognised, and a genuine DSN after a reminder
    was "traced: address, unverified" and suspended nothing."""
    from tests.test_bounce_handling import dsn, ingest
    from worker.mail.verp import token_in

    monkeypatch.setenv("OMITAMA_NOTIFY_MAIL__RETURN_PATH", TEMPLATE)  # for `bounces ingest`
    s = variant(settings_for(settings, smtp_sink, 0.0), mail={"return_path": TEMPLATE},
                reminder={"enabled": True})
    active(s, "C1", "taro@docomo.ne.jp")
    active(s, "C2", "hana@example.jp")
    with run_worker(s):
        send(hold_event("H1", "C1", pickup_by="2099-12-05"))
        send(hold_event("H2", "C2", pickup_by="2099-12-05"))
        wait_for(lambda: len(smtp_sink.messages) == 2)
    assert reminder_pass(s, "2099-12-04T10:00:00+09:00")["mails"] == 2
    by_card = {m.rcpt_tos[0]: m for m in smtp_sink.messages[2:]}
    for m in by_card.values():
        assert token_in(TEMPLATE, [m.mail_from]), m.mail_from  # its own return path
        assert decoded(m)["Message-ID"].startswith("<remind.")

    # C1: a genuine DSN quoting the reminder (no return path recorded): the Message-ID
    quoted = tmp_path / "quoted.eml"
    quoted.write_bytes(dsn(by_card["taro@docomo.ne.jp"].data, "taro@docomo.ne.jp", "5.1.1",
                           "550 5.1.1 <taro@docomo.ne.jp>: user unknown"))
    [row] = ingest(str(quoted))
    assert (row["traced"], row["trust"], row["card_number"]) == ("message-id", "verified", "C1")
    assert row["suspended"] == ["C1"]
    # C2: a DSN to the reminder's return path, quoting nothing: the VERP token
    verp = tmp_path / "verp.eml"
    verp.write_bytes(f"Delivered-To: {by_card['hana@example.jp'].mail_from}\r\n".encode()
                     + dsn(None, "hana@example.jp", "5.1.1", "550 5.1.1 user unknown",
                           mid="<b2@mx>"))
    [row] = ingest(str(verp))
    assert (row["traced"], row["trust"], row["card_number"]) == ("verp", "verified", "C2")
    assert row["suspended"] == ["C2"]
    # the holds' notices were mailed: the reminder's bounce does not list them
    assert {hold(s, h)["status"] for h in ("H1", "H2")} == {"sent"}
    assert [with_store(s, lambda st, c=c: st.get_contact(c)).state for c in ("C1", "C2")] == [
        ContactState.SUSPENDED, ContactState.SUSPENDED]


def test_a_confirmation_mail_is_traced_by_its_message_id(settings, smtp_sink, clean_redis,
                                                         tmp_path):
    from tests.test_bounce_handling import dsn, ingest
    from worker.queue.actors import address_registered

    s = settings_for(settings, smtp_sink, 0.0)
    with run_worker(s):
        address_registered.send({
            "event_id": "r1", "type": "address_registered", "card_number": "C1",
            "email": "taro@docomo.ne.jp", "registered_at": "2026-11-29T09:30:00+09:00",
            "application_branch": "ogawa"})
        wait_for(lambda: smtp_sink.messages)
    [m] = smtp_sink.messages
    assert decoded(m)["Message-ID"].startswith("<reg.")
    f = tmp_path / "b.eml"
    f.write_bytes(dsn(m.data, "taro@docomo.ne.jp", "5.1.1", "550 5.1.1 user unknown"))
    [row] = ingest(str(f))
    assert (row["traced"], row["trust"], row["card_number"]) == ("message-id", "verified", "C1")
    patron = with_store(s, lambda st: st.r.hgetall(st.k.patron("C1")))
    assert patron["confirmation"] == "bounced"
