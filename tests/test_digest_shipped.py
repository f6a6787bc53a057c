"""The digest as it ships: the real ``omitama-notify worker`` on settings.toml's own values
— a 900 s window, two processes of eight threads, the shipped leases and backoffs — not
the suite's window of 0 (tests/conftest.py) nor the short windows of tests/test_digest.py.

One deviation, and why: nobody waits a quarter of an hour in a test. Once the holds wait
in their windows, the test moves each window's end to now in Redis (the window's ``due``
and its ``gather_due`` score), which is all that fifteen minutes passing changes; the
worker then finds the windows due as it would at their end.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter

import pytest

from tests.helpers import hold_event, settle, wait_for
from tests.test_digest import active, decoded, hold, outcomes
from tests.test_faults import enqueue
from tests.worker_command import WorkerCommand
from worker.settings import load_settings

pytestmark = pytest.mark.slow

# the window settings.toml ships (the suite's environment sets 0; drop that, read the file)
SHIPPED = load_settings(environ={k: v for k, v in os.environ.items()
                                 if k != "OMITAMA_NOTIFY_DIGEST__GATHER_S"})


def test_the_shipped_window_gathers_for_fifteen_minutes_then_one_mail_per_card_and_branch(
        settings, clean_redis, smtp_sink):
    assert SHIPPED.digest.gather_s == 900  # what staff were told (docs/operations.md)
    r, p = clean_redis, settings.redis.key_prefix
    active(settings, "C1", "taro@docomo.ne.jp")
    active(settings, "C2", "hanako@example.jp")
    book = lambda h: {"title": f"本-{h}", "material": "book"}  # noqa: E731
    events = [hold_event("H1", "C1", item=book("H1")),
              hold_event("H2", "C1", item=book("H2")),
              hold_event("H3", "C1", item=book("H3"), pickup_branch="tamari"),  # its own window
              hold_event("H4", "C2", item=book("H4")),
              hold_event("H5", "C3", item=book("H5"))]  # no address: the call list, at once
    w = WorkerCommand(smtp_sink.port, processes=None, threads=None,
                      OMITAMA_NOTIFY_DIGEST__GATHER_S=str(SHIPPED.digest.gather_s))
    try:
        t0 = time.time()
        enqueue(r, events)
        wait_for(lambda: all(hold(settings, h).get("gather") for h in ("H1", "H2", "H3", "H4")),
                 timeout=20)
        wait_for(lambda: hold(settings, "H5").get("status") == "phoned", timeout=20)
        due = r.zrange(f"{p}gather_due", 0, -1, withscores=True)
        assert sorted(e.split(" ", 1)[1] for e, _ in due) == [
            "ogawa C1", "ogawa C2", "tamari C1"], due
        for _, at in due:  # each window ends 900 s after the hold that opened it
            assert t0 + 900 - 1 <= at / 1000 <= time.time() + 900, (at / 1000 - t0)
        settle(1.5)  # three polls of every process: the windows hold
        assert smtp_sink.messages == []
        # fifteen minutes pass: every window's end is now
        now_ms = int(time.time() * 1000)
        for entry, _ in due:
            gid, branch, card = entry.split(" ")
            assert r.hget(f"{p}gather:{branch}:{card}", "id") == gid
            r.hset(f"{p}gather:{branch}:{card}", "due", now_ms)
            r.zadd(f"{p}gather_due", {entry: now_ms})
        wait_for(lambda: len(smtp_sink.messages) == 3, timeout=10)
        wait_for(lambda: all(hold(settings, h).get("status") == "sent"
                             for h in ("H1", "H2", "H3", "H4")), timeout=10)
        enqueue(r, [events[0]])  # the ILS announces H1 again: it was mailed, nothing more
        settle(2.0)  # a fourth mail would show now
        log = w.errors()
    finally:
        w.stop()
    got = sorted((m.rcpt_tos[0], sorted(re.findall(r"本-(H\d)", decoded(m).get_content())))
                 for m in smtp_sink.messages)
    assert got == [("hanako@example.jp", ["H4"]), ("taro@docomo.ne.jp", ["H1", "H2"]),
                   ("taro@docomo.ne.jp", ["H3"])], got
    assert Counter((o["hold_id"], o["outcome"]) for o in outcomes(r, settings)) == Counter(
        {("H1", "mailed"): 1, ("H2", "mailed"): 1, ("H3", "mailed"): 1, ("H4", "mailed"): 1,
         ("H5", "listed"): 1})
    assert r.zcard(f"{p}gather_due") == 0
    assert not log, log
