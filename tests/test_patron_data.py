"""`patron export` and `patron forget` (issue 11): a round trip on real Redis, a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import hold_event, run_worker, set_contact, variant, wait_for, with_store
from tests.test_retention import everything, outbox_text, traces
from worker.contact import ContactState

ROOT = Path(__file__).resolve().parents[1]
TITLE, NAME, ADDRESS = "消える本FG1", "忘れ 三郎FG", "forget.me@example.jp"


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=60, env={**os.environ, **env})


def _ev(hold_id: str, card: str, **over):
    return hold_event(hold_id, card, **{"item": {"title": TITLE, "material": "book"},
                                        "patron_name": NAME, **over})


def test_export_shows_everything_about_a_card_and_forget_leaves_only_the_audit_line(
        settings, clean_redis, tmp_path):
    from worker.queue.actors import hold_ready

    s = variant(settings, mail={"outbox_dir": str(tmp_path / "outbox")})
    env = {"OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path / "outbox")}
    r, p = clean_redis, s.redis.key_prefix
    with_store(s, lambda st: set_contact(st, "C-F", ContactState.ACTIVE, address=ADDRESS))
    with_store(s, lambda st: set_contact(st, "C-O", ContactState.ACTIVE, address="other@example.jp"))
    with_store(s, lambda st: st.add_failure({"card_number": "C-F", "hold_id": "H-1",
                                             "reason": "mailboxfull"}))
    with run_worker(s):
        hold_ready.send(_ev("H-1", "C-F"))
        hold_ready.send(_ev("H-2", "C-F", contact="phone"))
        hold_ready.send(_ev("H-3", "C-F", item={"title": TITLE, "material": "scroll"}))  # refused
        hold_ready.send(hold_event("H-O", "C-O"))
        wait_for(lambda: len(list((tmp_path / "outbox").glob("*.eml"))) == 2
                 and len(with_store(s, lambda st: st.calls())) == 2)
    others = {k: v for k, v in everything(r, p, s.redis.namespace).items()
              if "C-O" in k or "H-O" in k}

    out = cli(env, "patron", "export", "C-F", "--json")
    assert out.returncode == 0, out.stderr
    [line] = out.stdout.splitlines()
    data = json.loads(line)
    assert data["patron"]["state"] == "active" and data["patron"]["address"] == ADDRESS
    assert data["patron"].get("code_hash") in (None, "(hashed; kept)")
    assert set(data["holds"]) == {"H-1", "H-2", "H-3"}
    assert data["holds"]["H-1"]["event"]["item"]["title"] == TITLE
    assert {c["hold_id"] for c in data["call_list"]} == {"H-2", "H-3"}
    assert len(data["failures"]) == 1 and len(data["refused_events"]) == 1
    assert len(data["outbox_mails"]) == 1 and data["audit"] and data["recent_notices"] == ["H-1"]
    assert "H-O" not in line and "other@example.jp" not in line

    bad = cli(env, "patron", "forget", "C-F", "--staff", "S07", "--reason", " ")
    assert bad.returncode == 1 and "reason" in bad.stderr
    done = cli(env, "patron", "forget", "C-F", "--staff", "S07", "--reason", "利用者の申し出")
    assert done.returncode == 0, done.stderr
    assert "3 holds" in done.stdout and "1 outbox_mails" in done.stdout

    after = json.loads(cli(env, "patron", "export", "C-F", "--json").stdout)
    [entry] = after["audit"]
    assert (entry["kind"], entry["staff"], entry["why"]) == ("forgotten", "S07", "利用者の申し出")
    assert all(not v for k, v in after.items() if k not in ("card_number", "audit"))
    dump = everything(r, p, s.redis.namespace)
    secrets = (TITLE, NAME, ADDRESS)
    assert not {k for k, v in dump.items() if traces(v, secrets)}
    assert not traces(outbox_text(tmp_path / "outbox"), secrets)
    assert [k for k in dump if "C-F" in k or "C-F" in dump[k]] == [f"{p}audit:C-F"]
    # the other patron's records are as they were
    assert {k: dump.get(k) for k in others} == others


def test_export_never_shows_the_receipt_codes_hash(settings, clean_redis):
    from worker.app.patron_data import export

    with_store(settings, lambda st: set_contact(st, "C-P", ContactState.PENDING,
                                                address="pending@example.jp"))
    raw = with_store(settings, lambda st: st.r.hgetall(st.k.patron("C-P")))
    data = with_store(settings, lambda st: export(st, settings, "C-P"))
    assert data["patron"]["code_hash"] == "(hashed; kept)" and data["patron"]["state"] == "pending"
    assert raw["code_hash"] not in json.dumps(data) and raw["code_salt"] not in json.dumps(data)


@pytest.mark.parametrize("window_s", [2.0, 0.0])
def test_forget_while_a_message_is_still_queued_for_the_hold_is_not_undone(
        settings, smtp_sink, clean_redis, window_s):
    """`patron forget` while the hold waits — in a digest window (gather_s > 0), or for a
    retry after the relay's 451 (gather_s = 0) — used to be undone when the queued
    message came back: the claim found no hold, stored the event again, and the hold was
    listed with title and name, with new outcomes, visible in `patron export`. Now the
    message finds the hold stripped and listed as `forgotten` (the patron still has to be
    told): no card, no title, no name anywhere; no mail."""
    from worker.app.calls import calls_view
    from worker.app.patron_data import export, forget
    from worker.queue.actors import hold_ready
    from tests.helpers import queue_empty

    s = variant(settings, mail={"transport": "smtp"},
                smtp={"port": smtp_sink.port, "pool_size": 2, "timeout": 5},
                # the retry comes 2 s after the 451: time enough to forget before it
                delivery={"min_backoff_s": 2, "max_backoff_s": 2.5, "lease_s": 5},
                digest={"gather_s": window_s})
    r, p = clean_redis, s.redis.key_prefix
    with_store(s, lambda st: set_contact(st, "C-F", ContactState.ACTIVE, address=ADDRESS))
    if not window_s:
        smtp_sink.refuse(ADDRESS, "451 4.3.0 try again later")  # every attempt: a retry
    with run_worker(s):
        hold_ready.send(_ev("H-1", "C-F", pickup_by="2099-12-05"))
        wait_for(lambda: with_store(s, lambda st: st.get_hold("H-1")).get("status") == "retrying")
        due = r.zrange(f"{p}gather_due", 0, -1)  # the window's entry names the card
        assert len(due) == (1 if window_s else 0) and all(e.endswith(" C-F") for e in due)
        with_store(s, lambda st: forget(st, s, "C-F", "S07", "利用者の申し出"))
        right_after = with_store(s, lambda st: export(st, s, "C-F"))
        smtp_sink.refuse(ADDRESS, None)  # the relay would take it now
        if window_s:
            # forget took the window's entry too; one a poller had read just before the
            # forget comes back due, and its take finds the window gone: nothing revived
            assert r.zcard(f"{p}gather_due") == 0
            r.zadd(f"{p}gather_due", {due[0]: 0})
            wait_for(lambda: r.zcard(f"{p}gather_due") == 0, timeout=10)
        else:
            assert not queue_empty(s)  # the hold's retry is still to come back
            wait_for(lambda: queue_empty(s), timeout=20)
    assert all(not v for k, v in right_after.items() if k not in ("card_number", "audit"))
    after = with_store(s, lambda st: export(st, s, "C-F"))
    assert all(not v for k, v in after.items() if k not in ("card_number", "audit")), after
    assert smtp_sink.messages == []
    h = with_store(s, lambda st: st.get_hold("H-1"))
    assert (h["status"], h["reason"]) == ("phoned", "forgotten")
    assert not {"card_number", "event", "token", "notice"} & set(h)
    [row] = with_store(s, lambda st: calls_view(st))
    assert (row["hold_id"], row["card_number"], row["title"], row["patron_name"]) == (
        "H-1", None, None, "")
    assert (row["reason"], row["pickup_branch"], row["pickup_by"]) == (
        "forgotten", "ogawa", "2099-12-05")
    dump = everything(r, p, s.redis.namespace)
    assert not {k for k, v in dump.items() if traces(v, (TITLE, NAME, ADDRESS))}
    assert [k for k in dump if "C-F" in k or "C-F" in dump[k]] == [f"{p}audit:C-F"]
    told = [f for _, f in r.xrange(f"{p}outcomes") if f["hold_id"] == "H-1"]
    assert [(f["outcome"], f["reason"], f["card_number"]) for f in told] == [
        ("listed", "forgotten", "")]


def test_forget_lists_a_hold_not_yet_phoned_without_what_names_the_patron(
        settings, clean_redis, tmp_path):
    """A hold on the call list when its card is forgotten stays there (the patron still
    has to be told) as `forgotten`, hold id, branch and last day only; a hold already
    mailed is not listed; a late duplicate of either re-creates nothing."""
    from worker.app.calls import calls_view
    from worker.app.patron_data import forget
    from worker.queue.actors import hold_ready
    from tests.helpers import queue_empty

    s = variant(settings, mail={"outbox_dir": str(tmp_path / "outbox")})
    with_store(s, lambda st: set_contact(st, "C-F", ContactState.ACTIVE, address=ADDRESS))
    with run_worker(s):
        hold_ready.send(_ev("H-1", "C-F"))
        hold_ready.send(_ev("H-2", "C-F", contact="phone", pickup_by="2099-12-05"))
        wait_for(lambda: with_store(s, lambda st: st.get_hold("H-1")).get("status") == "sent"
                 and with_store(s, lambda st: st.calls()))
        counts = with_store(s, lambda st: forget(st, s, "C-F", "S07", "利用者の申し出"))
        assert counts["listed_for_call"] == 1 and counts["holds"] == 2
        hold_ready.send(_ev("H-1", "C-F"))  # late duplicates from the ILS
        hold_ready.send(_ev("H-2", "C-F", contact="phone", pickup_by="2099-12-05"))
        wait_for(lambda: queue_empty(s))
    [row] = with_store(s, lambda st: calls_view(st))
    assert (row["hold_id"], row["card_number"], row["title"], row["reason"], row["pickup_by"]) == (
        "H-2", None, None, "forgotten", "2099-12-05")
    assert with_store(s, lambda st: st.get_hold("H-1"))["status"] == "sent"
    dump = everything(clean_redis, s.redis.key_prefix, s.redis.namespace)
    assert not {k for k, v in dump.items() if traces(v, (TITLE, NAME, ADDRESS, "C-F"))
                if not k.endswith("audit:C-F")}


def test_forget_reaches_an_event_still_unread_in_the_queue(settings, clean_redis, tmp_path):
    """A hold_ready for the card still waiting in the queue (no worker has read it: no
    hold record yet) when the card is forgotten: the worker reads it afterwards and finds
    the hold listed as `forgotten`; it stores neither the event nor the card."""
    from worker.app.calls import calls_view
    from worker.app.patron_data import forget
    from worker.queue.actors import hold_ready
    from tests.helpers import queue_empty

    s = variant(settings, mail={"outbox_dir": str(tmp_path / "outbox")})
    with_store(s, lambda st: set_contact(st, "C-F", ContactState.ACTIVE, address=ADDRESS))
    hold_ready.send(_ev("H-Q", "C-F", pickup_by="2099-12-05"))  # no worker yet
    hold_ready.send(hold_event("H-O", "C-O", contact="phone"))  # another card's: untouched
    counts = with_store(s, lambda st: forget(st, s, "C-F", "S07", "利用者の申し出"))
    assert counts["listed_for_call"] == 1
    with run_worker(s):
        wait_for(lambda: queue_empty(s))
    rows = {r["hold_id"]: r for r in with_store(s, lambda st: calls_view(st))}
    assert (rows["H-Q"]["card_number"], rows["H-Q"]["title"], rows["H-Q"]["reason"]) == (
        None, None, "forgotten")
    assert rows["H-O"]["card_number"] == "C-O"
    h = with_store(s, lambda st: st.get_hold("H-Q"))
    assert "event" not in h and "card_number" not in h
    assert not list((tmp_path / "outbox").glob("*.eml"))
    dump = everything(clean_redis, s.redis.key_prefix, s.redis.namespace)
    assert not {k for k, v in dump.items() if traces(v, (TITLE, NAME, ADDRESS))}
