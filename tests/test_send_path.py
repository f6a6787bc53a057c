"""One send path (issue 18): the defects found on the way there, each as it was found.

Real Redis, a real dramatiq worker in this process, aiosmtpd on loopback. No sweeper
runs here: what these tests prove happens without it.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections import Counter

import pytest

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from worker.contact import ContactState

# the bound of issue 18, item 2: gather_s + lease_s + a sweep (none runs here)
WINDOW_S = 2.0
LEASE_S = 4.0


def settings_for(settings, smtp_sink, gather_s: float, lease_s: float = LEASE_S):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 2},
                   delivery={"min_backoff_s": 0.2, "max_backoff_s": 0.5, "lease_s": lease_s},
                   digest={"gather_s": gather_s})


def active(s, card: str, address: str) -> None:
    with_store(s, lambda st: set_contact(st, card, ContactState.ACTIVE, address=address))


def hold(s, hold_id: str) -> dict:
    return with_store(s, lambda st: st.get_hold(hold_id))


def send(event: dict) -> None:
    from worker.queue.actors import hold_ready
    hold_ready.send(event)


def outcomes(rclient, s) -> list[dict]:
    return [f for _, f in rclient.xrange(f"{s.redis.key_prefix}outcomes")]


def decoded(m) -> email.message.EmailMessage:
    return email.message_from_bytes(m.data, policy=email.policy.default)


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
    assert Counter(o["hold_id"] for o in outcomes(rclient, s)
                   if o["outcome"] == "mailed") == Counter({h: 1 for h in ids})
