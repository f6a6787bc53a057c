"""Operations: `check`, Prometheus metrics, and logs that leak nothing — on a real worker."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from tests.helpers import free_port, hold_event, wait_for, with_store
from tests.helpers import set_contact
from worker.app import registration

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None):
    return subprocess.run([sys.executable, "-m", "worker.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60, input=stdin,
                          env={**os.environ, **(env or {})})


def test_check_passes_on_outbox_and_fails_on_a_dead_relay(clean_redis, tmp_path):
    ok = cli("check", env={"OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path)})
    assert ok.returncode == 0, ok.stdout
    assert [line.split()[1] for line in ok.stdout.splitlines()] == ["settings", "redis", "mail",
                                                                     "templates", "sender", "digests"]
    bad = cli("check", env={"OMITAMA_NOTIFY_MAIL__TRANSPORT": "smtp",
                            "OMITAMA_NOTIFY_SMTP__PORT": "1",
                            "OMITAMA_NOTIFY_REDIS__URL": "redis://127.0.0.1:1/0"})
    assert bad.returncode == 1
    lines = bad.stdout.splitlines()
    assert lines[1].startswith("FAIL  redis") and lines[2].startswith("FAIL  mail")
    assert lines[3].startswith("ok    templates")


def test_check_says_when_digest_windows_wait_past_their_end(clean_redis, settings, tmp_path):
    """A window whose end passed a minute ago and nobody sent: no worker is running."""
    import time
    due = f"{settings.redis.key_prefix}gather_due"
    env = {"OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path)}
    clean_redis.zadd(due, {"w1 ogawa C1": int((time.time() + 600) * 1000)})
    ok = cli("check", env=env)
    assert ok.returncode == 0 and "ok    digests   1 digest window open, the next ends in" \
        in ok.stdout, ok.stdout
    clean_redis.zadd(due, {"w2 ogawa C2": int((time.time() - 120) * 1000)})
    late = cli("check", env=env)
    assert late.returncode == 1, late.stdout
    assert "FAIL  digests   2 digest windows open, the oldest 120 s past its end" in late.stdout


def test_check_talks_ehlo_to_a_real_relay(clean_redis, smtp_sink):
    r = cli("check", env={"OMITAMA_NOTIFY_MAIL__TRANSPORT": "smtp",
                          "OMITAMA_NOTIFY_SMTP__PORT": str(smtp_sink.port)})
    assert r.returncode == 0 and f"relay 127.0.0.1:{smtp_sink.port}: EHLO ok" in r.stdout


def test_full_run_metrics_and_no_leaks_in_json_logs(clean_redis, settings, smtp_sink, tmp_path):
    port = free_port()
    env = {**os.environ, "OMITAMA_NOTIFY_MAIL__TRANSPORT": "smtp",
           "OMITAMA_NOTIFY_SMTP__PORT": str(smtp_sink.port),
           "OMITAMA_NOTIFY_LOGGING__FORMAT": "json", "OMITAMA_NOTIFY_LOGGING__LEVEL": "DEBUG",
           "OMITAMA_NOTIFY_METRICS__PORT": str(port),
           "dramatiq_prom_db": str(tmp_path / "prom")}
    smtp_sink.refuse("kenji.bounce@docomo.ne.jp", "550 5.1.1 <kenji.bounce@docomo.ne.jp>: User unknown")
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    secrets = ["hanako.secret@ezweb.ne.jp", "kenji.bounce@docomo.ne.jp", "山田 花子", "鈴木 健二",
               "秘密の題名LK1", "隠す著者LK2", "誰にも言えない本LK3"]
    try:
        reg = {"event_id": "r1", "type": "address_registered", "card_number": "C1",
               "email": secrets[0], "registered_at": "2026-11-29T09:00:00+09:00",
               "application_branch": "ogawa"}
        assert cli("enqueue", "-", env=env, stdin=json.dumps(reg)).returncode == 0
        wait_for(lambda: smtp_sink.messages, timeout=30)
        body = email.message_from_bytes(smtp_sink.messages[0].data,
                                        policy=email.policy.default).get_content()
        code = re.search(r"^(\d{6})$", body, re.M)[1]
        secrets.append(code)
        with_store(settings, lambda st: registration.approve(st, settings, "C1", "S1", code=code))
        with_store(settings, lambda st: set_contact(st, 
            "C2", __import__("worker.contact").contact.ContactState.ACTIVE,
            address=secrets[1]))
        book = {"title": secrets[4], "author": secrets[5], "material": "book"}
        events = [hold_event("H1", "C1", patron_name=secrets[2], item=book),
                  hold_event("H2", "C2", patron_name=secrets[3], item=book),
                  hold_event("H3", "C3", contact="phone", patron_name=secrets[2], item=book),
                  # refused: a title of the wrong type, whose refusal is logged
                  hold_event("H4", "C4", contact="phone", patron_name=secrets[3],
                             item={"title": [secrets[6]], "material": "book"})]
        r = cli("enqueue", "-", env=env, stdin="\n".join(json.dumps(e) for e in events[:3]))
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(with_store(settings, lambda st: st.calls())) == 2, timeout=30)
        try:
            metrics = wait_for(lambda: _scrape(port, "omitama_call_list"), timeout=40)
        except AssertionError:
            raise AssertionError("metrics never complete:\n" + str(_scrape(port, ""))) from None
        from worker.queue.actors import hold_ready  # the ILS sends it unchecked, the worker refuses
        hold_ready.send(events[3])
        wait_for(lambda: with_store(settings, lambda st: st.rejected()), timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert 'omitama_notices_total{outcome="sent"} 1.0' in metrics
    assert 'omitama_notices_total{outcome="phoned"} 2.0' in metrics
    assert re.search(r'omitama_call_list\{branch="ogawa"\} 2\.0', metrics)
    assert "omitama_pending_approvals 0.0" in metrics
    assert "omitama_suspended_addresses 1.0" in metrics
    assert 'omitama_bounces{reason="userunknown"} 1.0' in metrics
    assert "dramatiq_messages_total" in metrics
    json_lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert any("h***@ezweb.ne.jp" in j["msg"] for j in json_lines), out
    assert any("<hold." in j["msg"] for j in json_lines), out  # Message-IDs stay traceable
    assert any(j["msg"] == "event loop: uvloop" for j in json_lines), out
    # one zone in every line: Tokyo time with its offset, as the CLI prints times
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00", j["ts"])
               for j in json_lines), out
    for secret in secrets:
        assert secret not in out, f"{secret!r} leaked into the logs"
        assert secret not in metrics, f"{secret!r} leaked into a metric"
    assert "event refused" in out  # the refusal was logged: and without its title


def test_the_staff_pages_access_log_names_no_title_nor_patron(clean_redis, settings, tmp_path,
                                                              caplog):
    """uvicorn's access log (when an operator turns it on) sees every path and query
    string staff open: a title or a name must never be in one."""
    import logging
    import threading

    import httpx
    import uvicorn

    from tests.helpers import run_worker, variant
    from worker.queue.actors import hold_ready
    from worker.web.app import create_app
    from worker.web.auth import Accounts

    s = variant(settings, mail={"outbox_dir": str(tmp_path / "out")})
    title, name = "閲覧禁止の本AC1", "秘密 四郎AC"
    with run_worker(s):
        for hold_id in ("H1", "H2"):
            hold_ready.send(hold_event(hold_id, "C1", contact="phone", patron_name=name,
                                       item={"title": title, "material": "book"}))
        wait_for(lambda: len(with_store(s, lambda st: st.calls())) == 2)
    with_store(s, lambda st: Accounts(st, s.web).add("S01", "kasidasi-2026", None))
    caplog.set_level(logging.INFO)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port,
                                        log_config=None, log_level="info", access_log=True))
    threading.Thread(target=srv.run, daemon=True).start()
    wait_for(lambda: srv.started)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True) as web:
            csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/login").text)[1]
            web.post("/login", data={"csrf": csrf, "staff_id": "S01",
                                     "password": "kasidasi-2026", "next": "/calls"})
            page = web.get("/calls?branch=ogawa")
            assert title in page.text and name in page.text  # staff see them, the log must not
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)[1]
            for path, form in (("/calls/called", {"hold_id": "H1", "note": f"{name}さんに伝言"}),
                               ("/calls/uncall", {"hold_id": "H1"})):
                assert web.post(path, data={"csrf": csrf, "next": "/calls?branch=ogawa", **form}
                                ).status_code == 200
            web.get("/patron", params={"card": "C1"})
            web.get("/rejected")
    finally:
        srv.should_exit = True
    access = [r.getMessage() for r in caplog.records if r.name == "uvicorn.access"]
    # it logs paths with their query strings: a name in one would be caught here
    assert any("/calls/called" in line for line in access), access
    assert any("/patron?card=C1" in line for line in access), access
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert title not in logged and name not in logged, logged


def _scrape(port: int, needle: str) -> str | None:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return None
    if not needle:
        return text
    return text if needle in text and "omitama_suspended_addresses 1.0" in text else None


def test_mask_filter_masks_whatever_slips_through(caplog):
    import logging

    from worker.logs import MaskFilter, mask_text
    assert mask_text("550 <taro.yamada@docomo.ne.jp> unknown") == "550 <t***@docomo.ne.jp> unknown"
    assert mask_text("notice <hold.ab12@city.omitama.ibaraki.jp>") == \
        "notice <hold.ab12@city.omitama.ibaraki.jp>"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s failed", ("a.b@ezweb.ne.jp",),
                               None)
    MaskFilter().filter(record)
    assert record.getMessage() == "to a***@ezweb.ne.jp failed"


def test_review_rejected_lists_refusals_in_arrival_order(clean_redis, settings):
    # many refusals inside one millisecond used to tie and come out in fingerprint order
    from worker.app.refusals import keep_refusal as reject

    async def refuse_many(store):
        for i in range(60):
            await reject(store, {"event_id": f"E{i:02d}", "type": "hold_ready"}, f"bad {i}")
    with_store(settings, refuse_many)
    r = cli("review", "rejected", "--json")
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["event_id"] for x in r.stdout.splitlines()] == \
        [f"E{i:02d}" for i in range(60)]


def test_first_notice_of_each_interval_is_logged_at_info(caplog):
    import logging

    from worker.queue import activity
    activity.take()
    with caplog.at_level(logging.INFO, logger="worker.queue.activity"):
        for i in range(50):
            activity.note("sent", f"H{i}")
            activity.note("phoned", f"P{i}")
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == 1 and lines[0].startswith("hold H0: notice sent; "), lines
        assert activity.take() == {"sent": 50, "phoned": 50}
        activity.note("sent", "H50")  # a new interval: its first notice again
        assert caplog.records[-1].getMessage().startswith("hold H50: notice sent")
    activity.take()


def test_log_times_are_tokyo_with_offset_whatever_the_machine_zone():
    # a machine in UTC (or anywhere) still logs Tokyo time, as every CLI output shows it
    code = ("import logging, time; from worker.logs import use_tokyo_time; use_tokyo_time(); "
            "logging.basicConfig(format='%(asctime)s %(message)s'); "
            "r = logging.makeLogRecord({'msg': 'x', 'created': 1795964400.25, 'msecs': 250.0}); "
            "print(logging.getLogger().handlers[0].format(r))")
    for tz in ("UTC", "America/New_York", "Asia/Tokyo"):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           cwd=ROOT, env={**os.environ, "TZ": tz}, timeout=30)
        # 1795964400 = 2026-11-30T00:00:00+09:00
        assert r.stdout.strip() == "2026-11-30T00:00:00.250+09:00 x", (tz, r.stdout, r.stderr)
