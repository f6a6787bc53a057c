"""Issue 10: the bounce loop as production runs it, with no human step.

worker → a real Postfix relay (tests/relay.py) → a "carrier" that refuses one patron
with 550; Postfix writes the delivery-status report to the notice's VERP return path,
into the bounce Maildir; `bounces watch` picks it up, traces it by the token, records
the failure with advice, suspends the address and puts the hold back on the call list.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import relay as relay_mod
from tests.helpers import daemon_dir, hold_event, run_worker, variant, wait_for, with_store
from tests.test_bounce_handling import active, failures, hold, patron

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "bounce+{token}@city.omitama.ibaraki.jp"

pytestmark = pytest.mark.skipif(relay_mod.available() is not None,
                                reason=relay_mod.available() or "")


@pytest.fixture
def relay(smtp_sink):
    with daemon_dir("relay") as folder:
        r = relay_mod.Relay(folder, carrier_port=smtp_sink.port)
        r.start()
        try:
            yield r
        finally:
            r.stop()


def test_carrier_refusal_comes_back_through_the_relay_and_rephones_the_hold(
        settings, clean_redis, smtp_sink, relay):
    smtp_sink.refuse("taro@docomo.ne.jp",
                     "550 5.7.1 <taro@docomo.ne.jp>: Recipient address rejected: "
                     "rejected by recipient's filter")
    mailbox = f"maildir:{relay.maildir}"
    s = variant(settings, mail={"transport": "smtp", "return_path": TEMPLATE},
                smtp={"port": relay.port, "pool_size": 1, "timeout": 10},
                bounces={"mailbox": mailbox, "poll_s": 1})
    active(s, "C1", "taro@docomo.ne.jp")
    active(s, "C2", "hanako@example.jp")
    env = {**os.environ, "OMITAMA_NOTIFY_MAIL__RETURN_PATH": TEMPLATE,
           "OMITAMA_NOTIFY_BOUNCES__MAILBOX": mailbox}
    watcher = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "bounces", "watch"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        from worker.queue.actors import hold_ready
        with run_worker(s):
            hold_ready.send(hold_event("H1", "C1"))
            hold_ready.send(hold_event("H2", "C2"))
            # the relay said 250 to both: from the worker's side both were mailed
            wait_for(lambda: hold(s, "H2").get("status") == "sent"
                     and hold(s, "H1").get("status") in ("sent", "phoned"))
        wait_for(lambda: hold(s, "H1").get("status") == "phoned", timeout=60)
    finally:
        watcher.send_signal(signal.SIGTERM)
        out, err = watcher.communicate(timeout=30)
    assert watcher.returncode == 0, err
    assert "status=bounced" in relay.log() and "delivered to maildir" in relay.log()
    [f] = failures(s)
    assert (f["card_number"], f["hold_id"], f["reason"]) == ("C1", "H1", "filtered")
    assert (f["traced"], f["verified"], f["source"]) == ("verp", True, "bounce mail")
    assert "lib@city.omitama.ibaraki.jp" in f["advice"]
    assert patron(s, "C1")["state"] == "suspended" and patron(s, "C2")["state"] == "active"
    [call] = with_store(s, lambda st: st.calls())
    assert (call["hold_id"], call["reason"]) == ("H1", "bounced")
    assert hold(s, "H2")["status"] == "sent"
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["hanako@example.jp"]]
    assert os.listdir(relay.maildir / "new") == []
    assert len(os.listdir(relay.maildir / ".Processed" / "cur")) == 1
