"""`patron export` and `patron forget` (issue 11): a round trip on real Redis, a real worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
