"""The ILS's reconciliation pass (issue 19, item 3): ``holds missing`` names the holds the
worker never got (an event lost with the primary), and a re-announcement of any hold is
the idempotent event it is — the lost one mailed once, a finished one not again.

Real Redis, a real dramatiq worker in this process, aiosmtpd on loopback; the command
itself as a subprocess, as the ILS runs it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.helpers import hold_event, run_worker, settings_for, wait_for
from tests.test_digest import active, decoded, hold, outcomes
from tests.test_notice_message_id import announce, message_ids
from tests.test_raw_redis_producer import envelope, raw_enqueue
from worker.cli.holds import duration, read_lines

ROOT = Path(__file__).resolve().parent.parent


def missing(ids: list[str], *extra: str) -> tuple[list[str], str]:
    """``omitama-notify holds missing`` fed ``ids`` on standard input: its lines, stderr."""
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "holds", "missing", *extra],
                       input="\n".join(ids) + "\n", capture_output=True, text=True, cwd=ROOT,
                       timeout=60, env=os.environ)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines(), r.stderr


def drop_queued(r, s, hold_id: str) -> None:
    """A failover lost this hold's event: gone from dramatiq's queue before any worker
    took it."""
    ns = s.redis.namespace
    for rid, body in r.hgetall(f"{ns}:notifications.msgs").items():
        if json.loads(body)["args"][0]["hold_id"] == hold_id:
            r.hdel(f"{ns}:notifications.msgs", rid)
            r.lrem(f"{ns}:notifications", 0, rid)


def test_the_lost_event_is_named_and_its_re_announcement_mails_once(
        settings, smtp_sink, clean_redis, rclient):
    s = settings_for(settings, smtp_sink)
    ids = ["H1", "H2", "H3"]
    for i, h in enumerate(ids):
        active(s, f"C{i}", f"patron{i}@example.jp")
        announce(rclient, s, hold_event(h, f"C{i}"))
    drop_queued(rclient, s, "H2")
    # no worker yet: the two events that survived wait in the queue (pending), H2 is gone
    out, err = missing(ids + ["H9"], "--json")
    assert [json.loads(x) for x in out] == [
        {"hold_id": "H1", "state": "pending", "waiting": "queued"},
        {"hold_id": "H2", "state": "unknown"},
        {"hold_id": "H3", "state": "pending", "waiting": "queued"},
        {"hold_id": "H9", "state": "unknown"}]
    assert "4 holds: 2 unknown (re-announce them), 2 pending, 0 with an outcome" in err
    with run_worker(s):
        wait_for(lambda: hold(s, "H1").get("status") == hold(s, "H3").get("status") == "sent")
        assert missing(ids)[0] == ["H2"]  # exactly the lost one
        # the ILS's pass: every hold announced long enough ago with no outcome, again
        for h in ids:
            announce(rclient, s, hold_event(h, f"C{ids.index(h)}"))
        wait_for(lambda: hold(s, "H2").get("status") == "sent")
        wait_for(lambda: not rclient.hlen(f"{s.redis.namespace}:notifications.msgs"))
        time.sleep(0.5)  # not a sync: lets a stray mail show up before we count
        assert missing(ids)[0] == []
    # one mail per hold: the re-announced finished holds were duplicates, not mailed again
    assert sorted(m.rcpt_tos[0] for m in smtp_sink.messages) == [
        f"patron{i}@example.jp" for i in range(3)]
    assert Counter(o["hold_id"] for o in outcomes(rclient, s)) == Counter(ids)
    assert {o["outcome"] for o in outcomes(rclient, s)} == {"mailed"}


def test_gathering_and_retrying_holds_are_pending_not_lost(
        settings, smtp_sink, clean_redis, rclient):
    """A hold in its card's digest window, and one waiting for its retry after a 4xx:
    neither has an outcome, neither is lost."""
    # 60 s, not the shipped 900 s: the window must outlast the test, no more (the shipped
    # window is tests/test_digest_shipped.py's)
    s = settings_for(settings, smtp_sink, gather_s=60.0)
    active(s, "C1", "taro@example.jp")
    with run_worker(s):
        announce(rclient, s, hold_event("H1", "C1"))
        wait_for(lambda: hold(s, "H1").get("status") == "retrying")
    r = settings_for(settings, smtp_sink, backoff_s=60.0)
    active(r, "C2", "hanako@example.jp")
    smtp_sink.state.rcpt_rules["hanako@example.jp"] = ["451 4.3.0 try again later"]
    with run_worker(r):
        announce(rclient, r, hold_event("H2", "C2"))
        wait_for(lambda: hold(r, "H2").get("status") == "retrying")
    out, _ = missing(["H1", "H2"], "--json")
    assert [json.loads(x) for x in out] == [
        {"hold_id": "H1", "state": "pending", "waiting": "gathering"},
        {"hold_id": "H2", "state": "pending", "waiting": "retrying"}]
    assert missing(["H1", "H2"])[0] == []
    assert message_ids(smtp_sink) == []


def test_the_input_lines_and_since():
    now = "2099-01-01T00:00:00+09:00"
    text = io.StringIO(f"H1\n\n# a comment\nH2 2020-01-01T09:00:00\nH3 {now}\nH1\n"
                       "bad id!\nH4 yesterday\nH5 2020-01-01T00:00:00+09:00 extra\n")
    err = io.StringIO()
    ids, recent, bad = read_lines(text, duration("15m"), err)
    assert (ids, recent, bad) == (["H1", "H2"], 1, 3)
    assert err.getvalue().count("not 'HOLD_ID' or 'HOLD_ID ANNOUNCED_AT'") == 3
    assert read_lines(io.StringIO(f"H3 {now}\n"), None, err)[0] == ["H3"]  # no --since
    assert [duration(x) for x in ("90", "90s", "15m", "2h", "1d")] == [
        timedelta(seconds=90), timedelta(seconds=90), timedelta(minutes=15),
        timedelta(hours=2), timedelta(days=1)]
    for wrong in ("", "15 minutes", "-5m", "m"):
        with pytest.raises(Exception, match="not a duration"):
            duration(wrong)


def test_a_bad_line_is_named_and_the_rest_answered(clean_redis):
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "holds", "missing", "-"],
                       input="H1\nnot a hold\n", capture_output=True, text=True, cwd=ROOT,
                       timeout=60, env=os.environ)
    assert (r.returncode, r.stdout) == (1, "H1\n")
    assert "line 2: not 'HOLD_ID' or 'HOLD_ID ANNOUNCED_AT': 'not a hold'" in r.stderr


@pytest.mark.parametrize("body,named", [
    ({"actor_name": "hold_ready", "args": [{"type": "hold_ready", "hold_id": "H1"}]}, "H1"),
    # a give-up carries the message it gave up on; a malformed message its raw text
    ({"actor_name": "omitama_gave_up", "args": [
        {"actor_name": "hold_ready", "args": [{"hold_id": "H2"}]}, {"retries": 8}]}, "H2"),
    ({"actor_name": "omitama_malformed", "args": [
        json.dumps({"actor_name": "hold_readyy", "args": [{"type": "hold_ready",
                                                            "hold_id": "H3"}]}), "why"]}, "H3"),
    ({"actor_name": "hold_cancelled", "args": [{"type": "hold_cancelled", "hold_id": "H4"}]},
     None),
    ({"actor_name": "hold_ready", "args": [{"hold_id": 5}]}, None),
    ("not json{", None), ([1, 2], None), ({"args": "x"}, None),
    # an event in kwargs: the decoder refuses the envelope and lists the hold it names
    ({"actor_name": "hold_ready", "args": [], "kwargs": {"event": {"hold_id": "H6"}}}, "H6"),
    ({"actor_name": "omitama_gave_up", "args": [
        {"actor_name": "hold_ready", "args": [], "kwargs": {"event": {"hold_id": "H7"}}}, {}]},
     "H7"),
    # a raw text is read one level down only in our own malformed's retry
    ({"actor_name": "hold_ready", "args": [json.dumps(
        {"actor_name": "hold_ready", "args": [{"hold_id": "H8"}]})]}, None),
])
def test_which_hold_a_queued_message_names(body, named):
    from worker.ils.messages import queued_hold

    assert queued_hold(body if isinstance(body, str) else json.dumps(body)) == named


def test_a_hold_ready_sent_in_kwargs_is_queued_then_listed(
        settings, smtp_sink, clean_redis, rclient):
    """The decoder refuses an envelope with the event in ``kwargs`` but lists the hold it
    names (worker/app/intake.py): while it waits, ``holds missing`` says "queued" — not
    "unknown", which would have the ILS re-announce a hold whose listing is on the way."""
    s = settings_for(settings, smtp_sink)
    active(s, "C1", "taro@example.jp")
    body = json.loads(envelope("hold_ready", None, None))
    body.update(args=[], kwargs={"event": hold_event("H1", "C1")})
    raw_enqueue(rclient, s.redis.namespace, json.dumps(body))
    out, _ = missing(["H1"], "--json")
    assert [json.loads(x) for x in out] == [
        {"hold_id": "H1", "state": "pending", "waiting": "queued"}]
    with run_worker(s):
        wait_for(lambda: hold(s, "H1").get("status") == "phoned")
        wait_for(lambda: not rclient.hlen(f"{s.redis.namespace}:notifications.msgs"))
    assert missing(["H1"])[0] == []
    assert [o["outcome"] for o in outcomes(rclient, s)] == ["listed"]
    assert smtp_sink.messages == []


def test_a_re_announced_hold_waiting_for_its_retry_is_not_tried_early(
        settings, smtp_sink, clean_redis, rclient):
    """The ILS's pass may re-announce a hold that is retrying (it has no outcome yet): the
    new message waits for the retry set after the 4xx instead of trying now, so the
    reconciliation adds no attempts against a relay that asked us to wait."""
    s = settings_for(settings, smtp_sink, backoff_s=60.0)
    active(s, "C1", "taro@example.jp")
    smtp_sink.state.rcpt_rules["taro@example.jp"] = ["451 4.3.0 try again later", None]
    dq = f"{s.redis.namespace}:notifications.DQ.msgs"
    with run_worker(s):
        announce(rclient, s, hold_event("H1", "C1"))
        wait_for(lambda: hold(s, "H1").get("status") == "retrying")
        retry_ms = int(hold(s, "H1")["retry_ms"])
        announce(rclient, s, hold_event("H1", "C1"))
        wait_for(lambda: rclient.hlen(dq) == 2)  # both messages wait now: the retry and ours
        assert (hold(s, "H1")["attempts"], hold(s, "H1")["retry_ms"]) == ("1", str(retry_ms))
    assert smtp_sink.messages == []


def reconciliation_pass(r, s, announced: dict[str, tuple[int, dict]], older_ms: int) -> list[str]:
    """docs/ils-integration.md, "the reconciliation pass", in raw Redis commands: the
    outcomes since the oldest announcement (XRANGE from its ms), then HSET + RPUSH again,
    with new ids, for every hold announced before ``older_ms`` without one."""
    stream = f"{s.redis.key_prefix}outcomes"
    start, seen = str(min(at for at, _ in announced.values())), set()
    while True:
        rows = r.xrange(stream, start, "+", count=1000)
        seen |= {f["hold_id"] for _, f in rows}
        if len(rows) < 1000:
            break
        start = "(" + rows[-1][0]
    again = [h for h, (at, _) in announced.items() if at < older_ms and h not in seen]
    for h in again:
        announce(r, s, announced[h][1])
    return again


def test_the_raw_redis_reconciliation_pass(settings, smtp_sink, clean_redis, rclient):
    s = settings_for(settings, smtp_sink)
    announced: dict[str, tuple[int, dict]] = {}
    for i, h in enumerate(["H1", "H2", "H3"]):
        active(s, f"C{i}", f"patron{i}@example.jp")
        announced[h] = (int(time.time() * 1000), hold_event(h, f"C{i}"))
        announce(rclient, s, announced[h][1])
    drop_queued(rclient, s, "H2")  # lost with the primary
    with run_worker(s):
        wait_for(lambda: hold(s, "H1").get("status") == hold(s, "H3").get("status") == "sent")
        assert reconciliation_pass(rclient, s, announced, int(time.time() * 1000)) == ["H2"]
        wait_for(lambda: hold(s, "H2").get("status") == "sent")
        # the next pass finds nothing to do
        assert reconciliation_pass(rclient, s, announced, int(time.time() * 1000)) == []
        time.sleep(0.5)  # not a sync: lets a stray mail show up before we count
    assert len(smtp_sink.messages) == 3
    assert Counter(o["hold_id"] for o in outcomes(rclient, s)) == Counter(list(announced))


def test_a_re_announced_hold_in_its_digest_window_stays_in_it(
        settings, smtp_sink, clean_redis, rclient):
    # 2 s, not the shipped 900 s: the re-announcement must come mid-window and the test
    # see the window's mail (tests/test_digest_shipped.py runs the shipped one)
    s = settings_for(settings, smtp_sink, gather_s=2.0)
    active(s, "C1", "taro@example.jp")
    with run_worker(s):
        announce(rclient, s, hold_event("H1", "C1"))
        announce(rclient, s, hold_event("H2", "C1"))
        wait_for(lambda: {hold(s, h).get("status") for h in ("H1", "H2")} == {"retrying"})
        before = hold(s, "H1")
        delayed = f"{s.redis.namespace}:notifications.DQ.msgs"
        announce(rclient, s, hold_event("H1", "C1"))  # the ILS's pass, mid-window
        # it waits for the window's end (busy), rather than claim the hold again: the
        # hold keeps its claim's token and its one attempt (it used to count a second)
        wait_for(lambda: rclient.hlen(delayed) == 1, timeout=5)
        mid = hold(s, "H1")
        assert (mid["status"], mid["token"], mid["attempts"]) == (
            "retrying", before["token"], "1"), mid
        wait_for(lambda: {hold(s, h).get("status") for h in ("H1", "H2")} == {"sent"},
                 timeout=20)
        wait_for(lambda: not rclient.hlen(delayed), timeout=10)
        time.sleep(0.5)  # not a sync: lets a stray mail show up before we count
    [m] = smtp_sink.messages  # one digest for both
    assert "2点" in decoded(m)["Subject"]
    assert Counter(o["hold_id"] for o in outcomes(rclient, s)) == Counter(["H1", "H2"])
    assert hold(s, "H1")["attempts"] == "1"


def test_a_list_saved_by_a_spreadsheet_or_not_utf8_is_read_or_refused_in_one_line(
        tmp_path: Path) -> None:
    """A byte-order mark (Excel's "CSV UTF-8") does not hide the first hold; a list that is
    not UTF-8 stops with one line naming the fix, not a traceback; repeats count once."""
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffH-1\nH-2\nH-1\n".encode())
    with open(bom, encoding="utf-8") as fh:
        assert read_lines(fh, None, io.StringIO()) == (["H-1", "H-2"], 0, 0)
    bad = tmp_path / "sjis.txt"
    bad.write_bytes("H-1\n予約\n".encode("shift_jis"))
    r = subprocess.run([sys.executable, "-m", "worker.cli", "holds", "missing", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not UTF-8" in r.stderr and "Traceback" not in r.stderr, r.stderr
