"""Issue 10: automatic bounce intake (`bounces watch`) from a real Maildir and from a real
Dovecot over IMAP: each mail processed exactly once, across a restart mid-mailbox."""

from __future__ import annotations

import json
import mailbox
import os
import signal
import subprocess
import time
import sys
from pathlib import Path

import pytest

from tests.helpers import daemon_dir, variant, wait_for, with_store
from tests.test_bounce_handling import dsn, failures
from worker.mailbox.watch import watch

ROOT = Path(__file__).resolve().parents[1]


def bounce(i: int) -> bytes:
    """A real DSN for a different address each: traced by nobody, recorded once each."""
    return dsn(None, f"gone{i}@example.jp", "5.1.1", "550 5.1.1 User unknown",
               mid=f"<dsn{i}@mx.example.jp>")


def logged(s) -> list[dict]:
    return with_store(s, lambda st: st.r.lrange(st.k.bounces, 0, -1))


def fingerprints(s) -> list[str]:
    """Bounces recorded for the first time (duplicates and non-bounces left out)."""
    return [json.loads(x)["fingerprint"] for x in logged(s) if json.loads(x).get("is_bounce")]


def watch_cmd(env: dict, *args: str, **kw) -> subprocess.Popen:
    kw = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.Popen([sys.executable, "-m", "worker.cli.main", "bounces", "watch", *args],
                            cwd=ROOT, env={**os.environ, **env}, **kw)


def assert_each_processed_once(s, n: int) -> None:
    assert len(fingerprints(s)) == n and len(set(fingerprints(s))) == n
    assert len(failures(s)) == n  # each bounce's consequence applied exactly once


# -- Maildir ------------------------------------------------------------------------

@pytest.fixture
def maildir(tmp_path):
    md = mailbox.Maildir(str(tmp_path / "bounces"), create=True)
    return tmp_path / "bounces", md


def _fill(md, n: int) -> None:
    for i in range(n):
        md.add(bounce(i))


def _watch_once(env: dict) -> None:
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "bounces", "watch", "--once"],
                       cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr


def test_maildir_restart_mid_mailbox_processes_each_mail_once(settings, clean_redis, maildir):
    root, md = maildir
    n = 40
    _fill(md, n)
    md.add(b"From: taro@example.jp\r\nSubject: hello\r\nMessage-ID: <h1@x>\r\n\r\ncall me\r\n")
    (root / "new" / "unreadable").write_bytes(b"")  # an empty file: nothing to parse
    env = {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}"}
    s = variant(settings, bounces={"mailbox": f"maildir:{root}", "poll_s": 1})
    p = watch_cmd(env, "--quiet")
    try:
        wait_for(lambda: len(fingerprints(s)) >= 5, timeout=60)
    finally:
        p.send_signal(signal.SIGTERM)  # a restart (systemd stops it so): the mail in hand
        p.wait(30)                     # is finished, the rest stays
    assert p.returncode == 0
    left = sorted(os.listdir(root / "new"))
    assert len(left) > 2, "the restart did not come mid-mailbox"
    # a crash between recording a mail and moving it: recorded, still in the inbox
    from worker.app.ingest import ingest_one
    with_store(s, lambda st: ingest_one(st, s, "by hand", (root / "new" / left[0]).read_bytes()))
    _watch_once(env)
    assert os.listdir(root / "new") == [] and os.listdir(root / "cur") == []
    processed = os.listdir(root / ".Processed" / "cur")
    kept = os.listdir(root / ".ForStaff" / "cur")
    assert len(processed) == n and len(kept) == 2  # the personal mail and the empty one
    assert_each_processed_once(s, n)


def test_maildir_crash_mid_mailbox_loses_no_bounce(settings, clean_redis, maildir):
    """SIGKILL at any point: every bounce is recorded; only the one mail in hand at the
    crash may be recorded twice (see worker/app/ingest.py), no other."""
    root, md = maildir
    n = 30
    _fill(md, n)
    env = {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}"}
    s = variant(settings, bounces={"mailbox": f"maildir:{root}"})
    p = watch_cmd(env, "--quiet")
    try:
        wait_for(lambda: len(fingerprints(s)) >= 5, timeout=60)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(10)
    _watch_once(env)
    assert os.listdir(root / "new") == [] and len(os.listdir(root / ".Processed" / "cur")) == n
    assert set(fingerprints(s)) == {f"mid:<dsn{i}@mx.example.jp>" for i in range(n)}
    assert n <= len(failures(s)) <= n + 1


def test_watch_waits_for_new_mail_and_stops_cleanly(settings, clean_redis, maildir):
    root, md = maildir
    env = {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}",
           "OMITAMA_NOTIFY_BOUNCES__POLL_S": "30"}
    s = variant(settings, bounces={"mailbox": f"maildir:{root}"})
    p = watch_cmd(env, "--quiet")
    try:
        md.add(bounce(1))
        wait_for(lambda: len(os.listdir(root / ".Processed" / "cur")) == 1
                 if (root / ".Processed").is_dir() else False, timeout=30)
        md.add(bounce(2))
        wait_for(lambda: len(os.listdir(root / ".Processed" / "cur")) == 2, timeout=30)
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err
    assert_each_processed_once(s, 2)


def test_check_reports_the_bounce_mailbox(settings, maildir):
    root, _ = maildir
    env = {**os.environ, "OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}"}
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "check"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    [line] = [x for x in r.stdout.splitlines() if "bounces" in x]
    assert line.startswith("ok") and "readable, 0 mail(s) waiting" in line
    env["OMITAMA_NOTIFY_BOUNCES__MAILBOX"] = f"maildir:{root}/missing"
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "check"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    [line] = [x for x in r.stdout.splitlines() if "bounces" in x]
    assert line.startswith("FAIL") and "not a Maildir" in line


def test_in_process_pass_over_an_empty_mailbox(settings, clean_redis, maildir):
    root, _ = maildir
    s = variant(settings, bounces={"mailbox": f"maildir:{root}"})
    assert watch(s, once=True).mails == 0


# -- a real Dovecot over IMAP --------------------------------------------------------

from tests import imapd as imapd_mod  # noqa: E402

needs_dovecot = pytest.mark.skipif(imapd_mod.available() is not None,
                                   reason=imapd_mod.available() or "")


@pytest.fixture
def imapd():
    with daemon_dir("imapd") as folder:
        d = imapd_mod.Imapd(folder)
        d.start()
        try:
            yield d
        finally:
            d.stop()


def _imap(d):
    """A logged-in test client. Dovecot answers "[UNAVAILABLE] Temporary authentication
    failure" while its auth process is busy (a loaded CI machine): log in again then."""
    import imaplib
    deadline = time.monotonic() + 20
    while True:
        c = imaplib.IMAP4("127.0.0.1", d.port)
        try:
            c.login(imapd_mod.USER, imapd_mod.PASSWORD)
            return c
        except imaplib.IMAP4.error as e:
            c.shutdown()
            if "[UNAVAILABLE]" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # a retry interval, not synchronisation


def _count(d, folder: str) -> int:
    c = _imap(d)
    try:
        typ, data = c.select(f'"{folder}"', readonly=True)
        return int(data[0]) if typ == "OK" else -1
    finally:
        c.logout()


def _imap_env(d) -> dict:
    return {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": d.url,
            "OMITAMA_NOTIFY_BOUNCES__PASSWORD": imapd_mod.PASSWORD}


@needs_dovecot
def test_imap_restart_mid_mailbox_processes_each_mail_once(settings, clean_redis, imapd):
    n = 30
    c = _imap(imapd)
    for i in range(n):
        c.append("INBOX", None, None, bounce(i))
    c.append("INBOX", None, None, b"From: taro@example.jp\r\nSubject: hi\r\n\r\ncall me\r\n")
    c.logout()
    s = variant(settings, bounces={"mailbox": imapd.url})
    p = watch_cmd(_imap_env(imapd), "--quiet")
    try:
        wait_for(lambda: len(fingerprints(s)) >= 5, timeout=60)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert p.returncode == 0
    assert _count(imapd, "INBOX") > 2, "the restart did not come mid-mailbox"
    # a crash between recording and moving: recorded by hand, still in the INBOX
    c = _imap(imapd)
    c.select("INBOX")
    _, data = c.fetch("1", "(BODY.PEEK[])")
    c.logout()
    from worker.app.ingest import ingest_one
    with_store(s, lambda st: ingest_one(st, s, "by hand", data[0][1]))
    _watch_once(_imap_env(imapd))
    assert _count(imapd, "INBOX") == 0
    assert (_count(imapd, "Processed"), _count(imapd, "ForStaff")) == (n, 1)
    assert_each_processed_once(s, n)


def _deliver(d, raw: bytes) -> None:
    """APPEND over a login of the test's own (one "Login:" line in Dovecot's log). A file
    written into new/ by hand can wait for Dovecot's own 30 s re-check when it lands in
    the second of the watch's last look (Maildir times are whole seconds)."""
    c = _imap(d)
    try:
        c.append("INBOX", None, None, raw)
    finally:
        c.logout()


def _in_folder(d, folder: str) -> int:
    """Mails in a folder, from the Maildir itself (Dovecot moves into new/ or cur/)."""
    path = d.maildir / f".{folder}"
    return sum(len(os.listdir(path / sub)) for sub in ("new", "cur") if (path / sub).is_dir())


def _logins(d) -> int:
    return d.log().count(f"Login: user=<{imapd_mod.USER}>")


@needs_dovecot
def test_imap_idle_takes_each_bounce_within_seconds_on_one_login(settings, clean_redis, imapd):
    """Issue 23: every IDLE wait failed after a second (a read after a socket timeout:
    "cannot read from timed out object"); the watch logged out, slept poll_s, logged in
    again. Now: poll_s is ten minutes, yet each bounce is taken within seconds, all on
    the one login; a server that goes away ends the IDLE without a spin."""
    s = variant(settings, bounces={"mailbox": imapd.url})
    out_file = imapd.dir / "watch.out"
    before = _logins(imapd)
    with open(out_file, "wb") as out:
        p = watch_cmd({**_imap_env(imapd), "OMITAMA_NOTIFY_BOUNCES__POLL_S": "600"},
                      "--quiet", stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (imapd.maildir / ".ForStaff").is_dir(), timeout=60)  # made: idle
        for i in range(3):
            _deliver(imapd, bounce(i))
            started = time.monotonic()
            wait_for(lambda: _in_folder(imapd, "Processed") == i + 1, timeout=30)
            took = time.monotonic() - started
            assert took < 10, f"bounce {i} taken after {took:.1f} s"
            from tests.helpers import settle
            settle(2)  # idle for longer than the 1 s after which every IDLE used to fail
        assert _logins(imapd) - before == 1 + 3, imapd.log()[-2000:]  # the watch's + ours
        assert "unreachable" not in out_file.read_text(), out_file.read_text()
        imapd.stop()  # the server goes away in the middle of an IDLE
        wait_for(lambda: "unreachable" in out_file.read_text(), timeout=30)
        cpu = _cpu_s(p.pid)
        from tests.helpers import settle
        settle(2)  # the quiet period the test is about: no spin on a closed connection
        assert _cpu_s(p.pid) - cpu < 0.5
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    assert p.returncode == 0, out_file.read_text()
    assert_each_processed_once(s, 3)


@needs_dovecot
def test_check_reports_the_imap_mailbox_and_a_wrong_password(imapd):
    env = {**os.environ, **_imap_env(imapd)}
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "check"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    [line] = [x for x in r.stdout.splitlines() if "bounces" in x]
    assert line.startswith("ok") and "logged in, folder readable" in line and "IDLE" in line
    env["OMITAMA_NOTIFY_BOUNCES__PASSWORD"] = "wrong"
    r = subprocess.run([sys.executable, "-m", "worker.cli.main", "check"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    [line] = [x for x in r.stdout.splitlines() if "bounces" in x]
    assert line.startswith("FAIL") and "OMITAMA_NOTIFY_BOUNCES__PASSWORD" in line
    assert imapd_mod.PASSWORD not in r.stdout + r.stderr


# -- issue 23: an entry that cannot be read never makes the watch spin ---------------

def _cpu_s(pid: int) -> float:
    """User + system CPU time of a process, from /proc (clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_dangling_symlink_in_new_leaves_the_watch_idle(settings, clean_redis, maildir):
    """A dangling symlink in new/ (what a file removed between listing and opening looks
    like, for good) was skipped and left there: the wait saw new/ non-empty, the pass
    skipped it again — 100 % CPU and a line per pass. It is set aside in ForStaff, once."""
    from tests.helpers import settle
    root, md = maildir
    os.symlink(root / "gone-for-good", root / "new" / "1700000000.M1P1.host")
    md.add(bounce(1))
    env = {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}",
           "OMITAMA_NOTIFY_BOUNCES__POLL_S": "30"}
    s = variant(settings, bounces={"mailbox": f"maildir:{root}"})
    # output to a file: a full pipe would stop a spinning watch and hide the spin
    with open(root.parent / "watch.out", "wb") as log:
        p = watch_cmd(env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (root / ".Processed" / "cur").is_dir()
                 and len(os.listdir(root / ".Processed" / "cur")) == 1, timeout=60)
        before = _cpu_s(p.pid)
        settle(3)  # the quiet period the test is about: an idle watch uses no CPU
        used = _cpu_s(p.pid) - before
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    lines = (root.parent / "watch.out").read_text(errors="replace").splitlines()
    assert p.returncode == 0, lines[-5:]
    assert used < 0.5, f"the watch used {used:.2f} s of CPU in 3 s while idle"
    assert len(lines) < 20, lines[:20]
    assert os.listdir(root / "new") == []
    [kept] = os.listdir(root / ".ForStaff" / "cur")
    assert (root / ".ForStaff" / "cur" / kept).is_symlink()
    assert_each_processed_once(s, 1)


def test_an_entry_neither_readable_nor_movable_is_skipped_with_a_back_off(maildir, caplog):
    """ForStaff cannot be made (its cur/ is a file): the unreadable entry stays, skipped
    by the passes and ignored by the wait until its back-off is over, one line each try."""
    import logging
    import time as time_mod
    from worker.mailbox.aside import SetAside
    from worker.mailbox.maildir import MaildirBox
    from worker.mailbox.watch import run_pass
    root, _ = maildir
    (root / ".ForStaff").mkdir()
    (root / ".ForStaff" / "cur").write_text("not a folder")
    os.symlink(root / "gone-for-good", root / "new" / "1700000000.M1P1.host")
    now = [1000.0]
    aside, box = SetAside(clock=lambda: now[0]), MaildirBox(root)

    def never(name: str, raw: bytes) -> list:
        raise AssertionError("nothing here can be read")
    with caplog.at_level(logging.INFO, logger="worker.mailbox.watch"):
        assert run_pass(box, never, aside=aside).mails == 1
        assert aside.blocks("new/1700000000.M1P1.host")
        started = time_mod.monotonic()
        box.wait(1.0, aside.blocked())  # the entry set aside is no reason to wake up
        assert time_mod.monotonic() - started >= 0.9
        assert run_pass(box, never, aside=aside).mails == 0
        now[0] += 61  # past the first back-off (60 s): tried once more, then 120 s
        assert run_pass(box, never, aside=aside).mails == 1
        now[0] += 61
        assert run_pass(box, never, aside=aside).mails == 0
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and "tried again in 60 s" in lines[0] and "in 120 s" in lines[1]
    assert os.listdir(root / "new") == ["1700000000.M1P1.host"]


# -- issue 23: the long-running watch logs at INFO, in the worker's format -------------

LINE = r"^\[20\d\d-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00\] \[PID \d+\] \[MainThread\] "


def test_the_watch_logs_an_unreachable_mailbox_and_redis_in_the_workers_format(
        settings, clean_redis, maildir):
    """At the CLI's ERROR level the watch said nothing for its whole life while the IMAP
    server or Redis was away; now: the worker's lines, Tokyo time, INFO and up."""
    import re
    from tests.helpers import free_port
    closed = free_port()
    env = {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"imap://bounce@127.0.0.1:{closed}/INBOX",
           "OMITAMA_NOTIFY_BOUNCES__PASSWORD": "x", "OMITAMA_NOTIFY_BOUNCES__POLL_S": "0.5"}
    where = f"imap://127.0.0.1:{closed}/INBOX"
    with open(maildir[0].parent / "imap.out", "wb") as out:
        p = watch_cmd(env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: (maildir[0].parent / "imap.out").read_text().count("unreachable") >= 2,
                 timeout=30)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    lines = (maildir[0].parent / "imap.out").read_text().splitlines()
    assert re.match(LINE + rf"\[worker\.mailbox\.watch\] \[INFO\] bounce mailbox {where}: "
                    "watching", lines[0]), lines
    assert re.match(LINE + rf"\[worker\.mailbox\.watch\] \[WARNING\] bounce mailbox {where} "
                    r"unreachable: .*refused.*; trying again in 0\.5 s$", lines[1]), lines
    # Redis away: the mail stays in the inbox, the watch says why and waits
    root, md = maildir
    md.add(bounce(1))
    env = {"OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}",
           "OMITAMA_NOTIFY_BOUNCES__POLL_S": "0.5",
           "OMITAMA_NOTIFY_REDIS__URL": f"redis://127.0.0.1:{closed}/0"}
    with open(root.parent / "redis.out", "wb") as out:
        p = watch_cmd(env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "Redis unreachable" in (root.parent / "redis.out").read_text(),
                 timeout=30)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(30)
    lines = (root.parent / "redis.out").read_text().splitlines()
    assert any(re.match(LINE + r"\[worker\.mailbox\.watch\] \[WARNING\] bounce mailbox "
                        rf"maildir:{root}: Redis unreachable .* the mail stays in the inbox",
                        x) for x in lines), lines
    assert len(os.listdir(root / "new")) == 1
