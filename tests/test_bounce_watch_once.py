"""Issue 24 #3: one bounce watcher per mailbox, and a mail taken in twice is counted once."""

from __future__ import annotations

import asyncio
import json
import mailbox
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis

from tests.helpers import variant, wait_for, with_store
from tests.test_bounce_handling import dsn, failures
from worker.store.core import Store
from worker.store.keys import Keys
from worker.settings import RedisSettings
from worker.store.watch_lock import (AlreadyWatched, LeaseLost, LeaseUnreachable, WatchLease,
                                       mailbox_id, sole_watcher)

ROOT = Path(__file__).resolve().parents[1]


def test_a_second_watch_on_the_same_mailbox_refuses_to_start(settings, clean_redis, tmp_path):
    root = tmp_path / "bounces"
    mailbox.Maildir(str(root), create=True)
    env = {**os.environ, "OMITAMA_NOTIFY_BOUNCES__MAILBOX": f"maildir:{root}",
           "OMITAMA_NOTIFY_BOUNCES__POLL_S": "1"}
    cmd = [sys.executable, "-m", "worker.cli.main", "bounces", "watch", "--quiet"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        key = Keys(settings.redis.key_prefix).bounce_watch
        wait_for(lambda: with_store(settings, lambda st: st.r.keys(key("*"))), timeout=60)
        second = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
        lines = second.stderr.strip().splitlines()
        assert second.returncode == 1 and len(lines) == 1, second.stderr
        assert "another 'bounces watch' already reads this mailbox" in lines[0]
        assert f"pid {first.pid}" in lines[0]
        once = subprocess.run(cmd[:-1] + ["--once"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
        assert once.returncode == 1 and "already reads" in once.stderr
        assert first.poll() is None  # the first goes on
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(30)
    # stopped cleanly, it let go at once: the next start is not refused
    assert not with_store(settings, lambda st: st.r.keys(key("*")))


def test_a_killed_watch_lets_go_when_its_lease_runs_out_and_a_lost_lease_stops_the_watch(
        settings, clean_redis):
    keys = Keys(settings.redis.key_prefix)
    crashed = WatchLease(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/b", lease_s=1)
    assert crashed.take() is None  # …and it never renews: killed
    with pytest.raises(AlreadyWatched, match="killed lets go within 1 s"):
        with sole_watcher(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/b", lambda: None, 1):
            pass
    # another mailbox is another lease
    with sole_watcher(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/other", lambda: None, 1):
        pass
    time.sleep(1.2)
    lost = threading.Event()
    with pytest.raises(LeaseLost, match="start it again"):  # a failure exit: systemd restarts
        with sole_watcher(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/b", lost.set, 1.5):
            time.sleep(1.0)  # renewed meanwhile (every 0.5 s)
            assert crashed.take() is not None and not lost.is_set()
            with_store(settings, lambda st: _drop(st, keys))  # ran out while Redis was away
            assert lost.wait(5), "a watch that lost its lease must be told to stop"
    crashed.close()


def test_a_lease_left_by_a_killed_watch_of_this_host_is_taken_over_at_once(settings, clean_redis):
    keys = Keys(settings.redis.key_prefix)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    key = keys.bounce_watch(mailbox_id("maildir:/var/mail/b"))
    with_store(settings, lambda st: st.r.set(
        key, f"tok pid {dead.pid} on {socket.gethostname()} since then", px=30_000))
    with sole_watcher(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/b", lambda: None):
        pass
    # a live one (this test's own process) is not
    with_store(settings, lambda st: st.r.set(
        key, f"tok pid {os.getpid()} on {socket.gethostname()} since then", px=30_000))
    with pytest.raises(AlreadyWatched, match=f"pid {os.getpid()}"):
        with sole_watcher(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/b", lambda: None):
            pass


async def _drop(st, keys):
    for k in await st.r.keys(keys.bounce_watch("*")):
        await st.r.delete(k)


def test_the_same_mail_taken_in_by_several_readers_at_once_counts_once(settings, clean_redis):
    from worker.app.ingest import ingest_one

    raw = dsn(None, "gone@example.jp", "5.1.1", "550 5.1.1 User unknown",
              mid="<twice@mx.example.jp>")

    async def go():
        stores = [Store.from_settings(settings) for _ in range(4)]
        try:
            return await asyncio.gather(*(ingest_one(st, settings, f"reader{i}:m", raw)
                                          for i, st in enumerate(stores)))
        finally:
            for st in stores:
                await st.close()

    results = asyncio.run(go())
    fresh = [rows for rows in results if not rows[0].get("duplicate")]
    assert len(fresh) == 1, results
    assert len(failures(settings)) == 1
    reasons = with_store(settings, lambda st: st.r.hgetall(st.k.bounce_reasons))
    logged = [json.loads(x) for x in with_store(settings, lambda st: st.r.lrange(st.k.bounces, 0, -1))]
    assert sum(1 for e in logged if e.get("is_bounce")) == 1, logged
    assert sum(1 for e in logged if e.get("duplicate")) == 3, logged
    assert sum(int(v) for v in reasons.values()) <= 1


# -- a lease is never believed in past its end (through a failover too) ------------------

def test_the_lease_waits_for_redis_at_most_a_third_of_the_lease():
    """With Sentinel a command waits [redis] failover_wait_s (30 s) for a primary: as long
    as the lease itself. The lease's client waits a third of the lease, and no more."""
    rs = RedisSettings(sentinels=["127.0.0.1:1"], master_name="omitama", failover_wait_s=30)
    lease = WatchLease(rs, "t:", "maildir:/var/mail/b", lease_s=30)
    try:
        assert lease.r.get_retry().wait_s == 10
    finally:
        lease.close()
    t0 = time.monotonic()
    with pytest.raises(LeaseUnreachable, match="no Sentinel names a primary"):
        with sole_watcher(rs, "t:", "maildir:/var/mail/b", lambda: None, lease_s=3):
            pass
    assert time.monotonic() - t0 < 3


def _watch_with(settings, monkeypatch, renew, lease_s: float):
    """sole_watcher on the test Redis with ``renew`` standing in for the renewal; yields
    the monotonic time the lease was taken at and the Event ``on_lost`` sets."""
    monkeypatch.setattr(WatchLease, "renew", renew)
    lost = threading.Event()
    t0 = time.monotonic()
    return sole_watcher(settings.redis.url, settings.redis.key_prefix, "maildir:/var/mail/b",
                        lost.set, lease_s), lost, t0


def _ttl_ms(settings) -> int:
    key = Keys(settings.redis.key_prefix).bounce_watch(mailbox_id("maildir:/var/mail/b"))
    return with_store(settings, lambda st: st.r.pttl(key))


def test_a_renewal_hung_past_the_lease_stops_the_watch_when_the_lease_runs_out(
        settings, clean_redis, monkeypatch):
    release = threading.Event()
    watcher, lost, t0 = _watch_with(settings, monkeypatch, lambda self: release.wait(10),
                                    lease_s=1.5)
    with pytest.raises(LeaseLost), watcher:
        assert lost.wait(5), "the watch went on past its lease"
        took = time.monotonic() - t0
        release.set()
    assert 1.4 <= took <= 1.5 + 0.3, took


def test_renewals_that_fail_give_the_lease_up_while_it_still_runs(
        settings, clean_redis, monkeypatch):
    def refused(self):
        raise redis.ConnectionError("Connection refused")
    watcher, lost, t0 = _watch_with(settings, monkeypatch, refused, lease_s=1.5)
    with pytest.raises(LeaseLost), watcher:
        assert lost.wait(5), "the watch went on past its lease"
        assert time.monotonic() - t0 < 1.5
        assert _ttl_ms(settings) > 0  # stopped before another could take it
    assert _ttl_ms(settings) == -2  # and given up


def test_one_failed_renewal_with_time_left_is_tried_again(settings, clean_redis, monkeypatch):
    real, calls = WatchLease.renew, []

    def once_refused(self):
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise redis.ConnectionError("Connection refused")
        return real(self)
    watcher, lost, t0 = _watch_with(settings, monkeypatch, once_refused, lease_s=3)
    with watcher:
        time.sleep(4)
        assert not lost.is_set() and _ttl_ms(settings) > 0
    assert len(calls) >= 3 and calls[1] - calls[0] < 1.5, [c - t0 for c in calls]
