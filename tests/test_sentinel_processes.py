"""Redis Sentinel (issue 19) as each process uses it: the staff web page, the commands
(`check` shows the Sentinel view; bad settings get one line) and `omitama-notify worker`,
which keeps consuming across a kill -9 of the primary with no restart.

Real servers: tests/redis_lab.py (a primary, a replica, three Sentinels on loopback)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.helpers import hold_event, set_contact, variant, wait_for, with_store
from tests.redis_lab import Lab, lab_or_skip
from tests.test_docs_match import _shape
from tests.test_operations import cli
from tests.test_sentinel import sentinel_settings
from tests.test_web import act, client_for, flash, logged_in, register
from worker.contact import ContactState
from worker.settings import RedisSettings
from worker.store.connect import sentinel_addrs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture
def lab(tmp_path: Path):
    with lab_or_skip(tmp_path / "lab") as lab:
        yield lab


def sentinel_env(lab: Lab, **more: str) -> dict[str, str]:
    """[redis] through the lab's Sentinels, from the environment as an operator sets it."""
    return {"OMITAMA_NOTIFY_REDIS__SENTINELS": ",".join(lab.sentinel_addrs),
            "OMITAMA_NOTIFY_REDIS__MASTER_NAME": lab.master_name,
            "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false", **more}


def test_the_staff_page_approves_across_a_failover(settings, lab, tmp_path):
    s = sentinel_settings(variant(settings, mail={"outbox_dir": tmp_path / "out"}), lab)
    with client_for(s) as web:
        logged_in(s, web)
        register(s, "C1", "taro@example.jp")
        register(s, "C2", "hana@example.jp")
        page = act(web, "/pending/approve-without-code", card="C1", reason="来館され本人確認済み")
        assert flash(page).startswith("ok:"), flash(page)
        old = lab.primary
        lab.wait_synced()
        old.kill9()
        # the next action waits for the new primary: staff see it done, not an error page
        page = act(web, "/pending/approve-without-code", card="C2", reason="来館され本人確認済み")
        assert flash(page).startswith("ok:"), flash(page)
        assert web.get("/pending").status_code == 200
    lab.wait_failover(old)

    async def states(store):
        return [(await store.contacts.get(c))["state"] for c in ("C1", "C2")]
    assert with_store(s, states) == [ContactState.ACTIVE, ContactState.ACTIVE]


def test_check_shows_the_sentinel_view(lab, tmp_path):
    env = sentinel_env(lab, OMITAMA_NOTIFY_MAIL__OUTBOX_DIR=str(tmp_path))
    ok = cli("check", env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    lines = ok.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["settings", "sentinel", "redis", "mail",
                                                   "templates", "sender", "digests"]
    assert lines[1].startswith(f"ok    sentinel  primary {lab.primary.addr} named by 3 of 3 ")
    assert f"1 replica: {lab.replicas[0].addr} online, lag" in lines[1], lines[1]
    assert f"answers at the primary of {lab.master_name!r} named by Sentinel" in lines[2]
    # what docs/operations.md ("Sentinel settings") shows is what check prints
    doc = (ROOT / "docs/operations.md").read_text("utf-8").split("### Sentinel settings")[1]
    shown = [x for x in doc.splitlines() if x.startswith(("ok    sentinel", "ok    redis"))]
    assert [_shape(x) for x in shown] == [_shape(x) for x in lines[1:3]], (shown, lines)
    # a name no Sentinel monitors: one line, no wait for a primary, exit 1
    other = cli("check", env={**env, "OMITAMA_NOTIFY_REDIS__MASTER_NAME": "other"})
    assert other.returncode == 1
    fails = [x for x in other.stdout.splitlines() if x.startswith("FAIL")]
    assert fails == [f"FAIL  sentinel  NoPrimary: no Sentinel names a primary for 'other' "
                     f"({'; '.join(a + ': No such master with that name' for a in lab.sentinel_addrs)})"]


def test_bad_sentinel_settings_get_one_line(tmp_path):
    cases = [
        ({"OMITAMA_NOTIFY_REDIS__SENTINELS": "10.0.0.1"},
         "setting [redis] sentinels: Value error, '10.0.0.1' is not host:port"),
        ({"OMITAMA_NOTIFY_REDIS__SENTINELS": "10.0.0.1:26379,10.0.0.2:263790"},
         "setting [redis] sentinels: Value error, '10.0.0.2:263790' is not host:port"),
        ({"OMITAMA_NOTIFY_REDIS__SENTINELS": "::1:26379"},
         "setting [redis] sentinels: Value error, '::1:26379' is ambiguous: write an IPv6 "
         "address in brackets before the port, [::1]:26379 if 26379 is the port"),
        ({"OMITAMA_NOTIFY_REDIS__SENTINELS": "10.0.0.1:26379"},
         "setting [redis] master_name: Value error, is missing: with sentinels set"),
        ({"OMITAMA_NOTIFY_REDIS__MASTER_NAME": "omitama"},
         "setting [redis] master_name: Value error, 'omitama' needs [redis] sentinels"),
    ]
    for env, want in cases:
        r = cli("check", env={"OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false", **env})
        assert r.returncode == 2 and r.stdout == "", r.stdout
        assert len(r.stderr.splitlines()) == 1 and want in r.stderr, r.stderr
    # Sentinels that do not answer: one line naming each, exit 1, and quickly
    dead = cli("check", env={"OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false",
                             "OMITAMA_NOTIFY_REDIS__SENTINELS": "127.0.0.1:1,127.0.0.1:2",
                             "OMITAMA_NOTIFY_REDIS__MASTER_NAME": "omitama",
                             "OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(tmp_path)})
    assert dead.returncode == 1
    assert [x for x in dead.stdout.splitlines() if x.startswith("FAIL")] == [
        "FAIL  sentinel  NoPrimary: no Sentinel in [redis] sentinels answers (127.0.0.1:1: "
        "Connection refused; 127.0.0.1:2: Connection refused); check that they run and that "
        "[redis] sentinel_password is theirs"]
    # a command that needs Redis says it in one line too
    review = cli("review", "calls", env={"OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false",
                                         "OMITAMA_NOTIFY_REDIS__SENTINELS": "127.0.0.1:1",
                                         "OMITAMA_NOTIFY_REDIS__MASTER_NAME": "omitama",
                                         "OMITAMA_NOTIFY_REDIS__FAILOVER_WAIT_S": "1"})
    assert review.returncode == 1 and len(review.stderr.splitlines()) == 1, review.stderr
    assert "no Sentinel names a primary for 'omitama' (127.0.0.1:1: Connection refused)" \
        in review.stderr


@pytest.mark.parametrize("entry,why", [
    ("::1:26379", "'::1:26379' is ambiguous: write an IPv6 address in brackets before the "
                  "port, [::1]:26379 if 26379 is the port"),
    ("2001:db8::11:26379", "[2001:db8::11]:26379 if 26379 is the port"),
    ("::1", "'::1' is ambiguous: write an IPv6 address in brackets before the port, e.g. "
            "[::1]:26379"),
    ("[10.0.0.1]:26379", "brackets hold an IPv6 address only, as in [::1]:26379"),
    ("[::1:26379", "brackets hold an IPv6 address only"),
    ("[::1]26379", "is not host:port"),
    ("[::1]:", "is not host:port"),
])
def test_a_sentinel_address_that_is_not_plain_host_port_is_refused(entry, why):
    """An unbracketed IPv6 address was taken apart at its last colon: `::1:26379` meant
    ::1 port 26379 to us, and may have meant the address itself to whoever wrote it."""
    with pytest.raises(ValidationError) as e:
        RedisSettings(sentinels=[entry], master_name="omitama")
    [error] = e.value.errors()
    assert error["loc"] == ("sentinels",) and why in error["msg"], error["msg"]


def test_sentinel_addresses_of_every_kind_are_taken_as_written():
    entries = ["10.0.0.11:26379", "sentinel-2.lib.omitama.local:26379", "[::1]:26379",
               "[2001:db8::13]:26380", "[fe80::1%eth0]:26379"]
    rs = RedisSettings(sentinels=entries, master_name="omitama")
    assert rs.sentinels == entries
    assert sentinel_addrs(rs) == [("10.0.0.11", 26379), ("sentinel-2.lib.omitama.local", 26379),
                                  ("::1", 26379), ("2001:db8::13", 26380),
                                  ("fe80::1%eth0", 26379)]


def test_the_worker_command_consumes_across_a_failover(settings, lab, tmp_path):
    """`omitama-notify worker` through the Sentinels: holds enqueued before and after a
    kill -9 of the primary are all mailed, by the same worker processes (no restart)."""
    outbox = tmp_path / "outbox"
    env = {**os.environ, **sentinel_env(lab), "OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(outbox),
           "OMITAMA_NOTIFY_WORKER__PROCESSES": "1", "OMITAMA_NOTIFY_WORKER__THREADS": "2"}
    s = sentinel_settings(settings, lab)
    with_store(s, lambda st: set_contact(st, "C1", ContactState.ACTIVE, address="a@example.jp"))
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "worker"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()

    def enqueue(first: int) -> None:
        events = "\n".join(json.dumps(hold_event(f"H{i}", "C1")) for i in range(first, first + 5))
        r = subprocess.run([sys.executable, "-m", "worker.cli.main", "enqueue", "-"],
                           input=events, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=90)
        assert r.returncode == 0, r.stderr

    try:
        wait_for(lambda: "Worker process is ready for action" in "".join(lines), timeout=60)
        enqueue(0)
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 5, timeout=60)
        old = lab.primary
        lab.wait_synced()
        old.kill9()
        enqueue(5)  # waits for the new primary, as the worker does
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 10, timeout=90)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert out.count("Worker process is ready for action") == 1, out  # never restarted
    assert "Traceback" not in out and "connection error" not in out.lower(), out
