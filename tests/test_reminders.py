"""Pickup reminders (issue 13, item 3): one mail per card and branch for mailed holds
not collected, days_before their last day at the hour, never twice, never after the
last day, not for picked-up, cancelled or phoned holds."""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from datetime import date, datetime

import pytest

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from worker.contact import ContactState
from worker.app.reminders import may_remind, reminder_at
from worker.jdate import TOKYO
from worker.mail.linewrap import MAIL_COLUMNS, columns

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_when_a_reminder_is_due():
    assert reminder_at(date(2099, 12, 5), 1, 10) == datetime(2099, 12, 4, 10, tzinfo=TOKYO)
    assert reminder_at(date(2099, 12, 5), 0, 9) == datetime(2099, 12, 5, 9, tzinfo=TOKYO)
    assert may_remind(date(2099, 12, 5), datetime(2099, 12, 5, 23, 59, tzinfo=TOKYO))
    assert not may_remind(date(2099, 12, 5), datetime(2099, 12, 6, 0, 0, tzinfo=TOKYO))


@pytest.fixture
def s(settings, smtp_sink, clean_redis):
    return variant(settings, mail={"transport": "smtp"},
                   smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 5},
                   delivery={"lease_s": 5}, reminder={"enabled": True})


def run(s, at: str) -> dict:
    env = {"OMITAMA_NOTIFY_MAIL__TRANSPORT": "smtp", "OMITAMA_NOTIFY_SMTP__PORT": str(s.smtp.port),
           "OMITAMA_NOTIFY_REMINDER__ENABLED": "true"}
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "reminders", "run", "--at", at],
                       capture_output=True, text=True, cwd=ROOT, timeout=60,
                       env={**__import__("os").environ, **env})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def outcomes(rclient, s) -> list[tuple[str, str]]:
    return [(f["hold_id"], f["outcome"]) for _, f in
            rclient.xrange(f"{s.redis.key_prefix}outcomes")]


def test_on_the_right_day_only_once_and_not_for_closed_or_phoned_holds(s, smtp_sink, rclient):
    async def setup(st):
        await set_contact(st, "C1", ContactState.ACTIVE, address="taro@docomo.ne.jp")
        await set_contact(st, "C2", ContactState.ACTIVE, address="hana@example.jp")
    with_store(s, setup)
    book = lambda t: {"title": t, "material": "book"}  # noqa: E731
    with run_worker(s):
        from worker.queue.actors import hold_ready
        hold_ready.send(hold_event("H1", "C1", item=book("吾輩は猫である"), pickup_by="2099-12-05"))
        hold_ready.send(hold_event("H2", "C1", item=book("坊っちゃん"), pickup_by="2099-12-05"))
        hold_ready.send(hold_event("H3", "C1", item=book("こころ"), pickup_by="2099-12-05"))
        hold_ready.send(hold_event("H4", "C1", item=book("門"), pickup_by="2099-12-05",
                                   contact="phone"))
        hold_ready.send(hold_event("H5", "C2", item=book("三四郎"), pickup_by="2099-12-09"))
        wait_for(lambda: len(smtp_sink.messages) == 4)
    with_store(s, lambda st: st.close_hold("H3", "picked_up", ttl_s=60))
    before = len(rclient.xrange(f"{s.redis.key_prefix}outcomes"))

    assert run(s, "2099-12-04T09:59:00+09:00")["mails"] == 0  # an hour early
    assert len(smtp_sink.messages) == 4
    done = run(s, "2099-12-04T10:00:00+09:00")
    assert done["mails"] == 1 and done["holds"] == 2
    [m] = smtp_sink.messages[4:]
    msg = email.message_from_bytes(m.data, policy=email.policy.default)
    assert msg["Subject"] == "【小美玉市立図書館】お取り置き期限が近づいています"
    body = msg.get_content()
    assert "吾輩は猫である" in body and "坊っちゃん" in body and "12月5日(土)まで" in body
    assert "こころ" not in body and "門" not in body  # picked up; phoned
    assert m.rcpt_tos == ["taro@docomo.ne.jp"]
    assert all(columns(line) <= MAIL_COLUMNS for line in body.splitlines()), body
    assert sorted(outcomes(rclient, s)[before:]) == [("H1", "reminded"), ("H2", "reminded")]
    # the same day again, and the last day: nothing more for C1
    assert run(s, "2099-12-04T15:00:00+09:00")["mails"] == 0
    assert run(s, "2099-12-05T10:00:00+09:00")["mails"] == 0
    # C2's hold, first looked at only after its last day: dropped, never mailed
    after = run(s, "2099-12-10T10:00:00+09:00")
    assert after["mails"] == 0 and after["dropped_late"] == 1
    assert len(smtp_sink.messages) == 5
    assert with_store(s, lambda st: st.r.zcard(st.k.reminders)) == 0
