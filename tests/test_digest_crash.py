"""A digest window whose send keeps raising after its take (a bug, not a relay's refusal
nor Redis out of reach) ends as a single hold does: its holds on the call list as
``worker_error`` (worker/app/digest.py CRASH_LIMIT), each once, while another card's
digest is mailed as usual. Real worker, real Redis, real SMTP; the crash is real too: an
operator's digest template with a bug that only one card's items reach."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import redis

from tests.helpers import SmtpSink, wait_for, with_store
from tests.test_faults import FAST, activate, addr, card, drained, enqueue, ev, hold, mailed
from tests.test_faults import sink  # noqa: F401 - the fixture
from tests.worker_command import WorkerCommand
from worker.app.digest import CRASH_LIMIT

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "壊れた本"


def broken_templates(tmp_path: Path) -> Path:
    """The shipped templates, but the digest body divides by zero for a title naming BROKEN:
    a single notice of that hold would be built; a digest holding it never is."""
    d = tmp_path / "mail"
    shutil.copytree(ROOT / "templates" / "mail", d)
    body = d / "hold_ready_digest.body.j2"
    body.write_text("{% for i in items %}{% if '" + BROKEN + "' in i.title %}{{ 1 // 0 }}"
                    "{% endif %}{% endfor %}" + body.read_text(encoding="utf-8"), encoding="utf-8")
    return d


def test_a_digest_that_keeps_crashing_ends_on_the_phone_list(clean_redis: redis.Redis,
                                                             settings: Any, sink: SmtpSink,
                                                             tmp_path: Path) -> None:
    per = 2  # two holds a card: C00000 (H00000, H00001) mailed, C00001 (H00002, H00003) crashes
    activate(settings, [0, 1])
    crashing = [ev(2, per, item={"title": f"{BROKEN} {hold(2)}", "material": "book"}), ev(3, per)]
    # FAST's 2 s leases and 1 s sweeps, and a 1 s window, so that the CRASH_LIMIT rounds
    # (each: two leases after the take, then the sweeper's re-send) take a minute, not the
    # ~40 min of the shipped settings
    w = WorkerCommand(sink.port, processes=1, threads=4, **FAST,
                      OMITAMA_NOTIFY_DIGEST__GATHER_S="1",
                      OMITAMA_NOTIFY_MAIL__TEMPLATES_DIR=str(broken_templates(tmp_path)))
    try:
        enqueue(clean_redis, [ev(0, per), ev(1, per), *crashing])
        wait_for(lambda: len(with_store(settings, lambda st: st.calls())) >= 2, timeout=240)
        wait_for(lambda: drained(clean_redis), timeout=60)
    finally:
        w.stop()
    calls = with_store(settings, lambda st: st.calls())
    holds = {h: with_store(settings, lambda st, h=h: st.get_hold(h)) for h in map(hold, range(4))}
    report = f"calls {[(c['hold_id'], c['reason']) for c in calls]}; mailed {dict(mailed(sink))}; " \
             f"holds {[(h, r.get('status'), r.get('crashes')) for h, r in holds.items()]}"
    assert sorted((c["hold_id"], c["reason"]) for c in calls) == \
        [(hold(2), "worker_error"), (hold(3), "worker_error")], report
    assert all("ZeroDivisionError" in c["detail"] for c in calls), report
    assert all(int(holds[hold(i)]["crashes"]) == CRASH_LIMIT for i in (2, 3)), report
    assert holds[hold(2)]["status"] == holds[hold(3)]["status"] == "phoned", report
    # the other card: one digest of both its holds, mailed once; nothing to the crashing card
    assert dict(mailed(sink)) == {hold(0): 1, hold(1): 1}, report
    assert [m.rcpt_tos for m in sink.messages] == [[addr(0)]], report
    assert "ZeroDivisionError" in "".join(w.log), report
