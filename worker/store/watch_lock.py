"""One ``bounces watch`` per mailbox: a lease in Redis, renewed while the watch runs.

Two watches reading one mailbox take mails in twice and trip over files the other moved
(issue 24). The first takes the lease ``bounces:watch:{mailbox}`` (SET NX with an expiry)
and renews it every third of :data:`LEASE_S` from a thread; a second is refused with one
line naming the holder. A watch that was killed stops renewing, so its lease runs out
and the next start takes over within :data:`LEASE_S` — at once when the killed watch ran
on the same host (its process is gone).

A watch must never go on believing in a lease that ran out: another may hold it by then.
So the lease's client waits for Redis (a failover included) at most a third of the lease,
not ``[redis] failover_wait_s``; a renewal that failed is tried again only while one more
could still end before the lease runs out, else the watch gives the lease up and stops;
and should a renewal hang past that moment all the same, the watch is told to stop when
the lease runs out (``on_lost``), not when the renewal returns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import redis

from ..errors import NotifyError, StoreError
from ..jdate import TOKYO
from ..settings import RedisSettings
from .connect import close, sync_client
from .keys import Keys
from .scripts import lua

log = logging.getLogger(__name__)

LEASE_S = 30.0
# after a renewal failed: the next try, while one could still end in time
RETRY_PAUSE_S = 1.0


class AlreadyWatched(NotifyError):
    """Another ``bounces watch`` holds the mailbox's lease."""


class LeaseUnreachable(StoreError):
    """Redis did not answer when the watch came to take its lease."""


class LeaseLost(NotifyError):
    """The watch stopped because it could not keep its lease: a failure exit, so that
    systemd starts it again (Restart=on-failure), to take the lease anew or be refused."""


def mailbox_id(mailbox: str) -> str:
    """A short stable name of the mailbox for the key (the setting may hold a path)."""
    return hashlib.sha256(mailbox.encode()).hexdigest()[:16]


class WatchLease:
    def __init__(self, where: RedisSettings | str, key_prefix: str, mailbox: str,
                 lease_s: float = LEASE_S) -> None:
        # renewed every third of the lease, and no command waits longer than that: a
        # renewal that fails is known to have failed while the lease still runs
        self.every_s = lease_s / 3
        self.r = sync_client(where, decode=True, socket_timeout=self.every_s,
                             wait_s=self.every_s)
        self.key = Keys(key_prefix).bounce_watch(mailbox_id(mailbox))
        self.lease_ms = int(lease_s * 1000)
        self.token = uuid.uuid4().hex
        self._keep = self.r.register_script(lua("lease_keep"))

    def take(self) -> str | None:
        """Take the lease: None when taken, else who holds it. A lease left by a watch of
        this host whose process is gone (killed) is taken over at once."""
        since = datetime.now(TOKYO).isoformat(timespec="seconds")
        value = f"{self.token} pid {os.getpid()} on {socket.gethostname()} since {since}"
        for _ in range(2):
            if self.r.set(self.key, value, nx=True, px=self.lease_ms):
                return None
            held = self.r.get(self.key) or ""
            if not _gone(held):
                break
            self._keep(keys=[self.key], args=[held.partition(" ")[0], 0])  # only that one's
        return held.partition(" ")[2] or "another watch"

    def renew(self) -> bool:
        return bool(self._keep(keys=[self.key], args=[self.token, self.lease_ms]))

    def give_up(self) -> None:
        self._keep(keys=[self.key], args=[self.token, 0])

    def close(self) -> None:
        close(self.r)


def _gone(held: str) -> bool:
    """Whether the lease value names a process of this host that no longer runs."""
    words = held.split()
    if len(words) < 5 or words[1] != "pid" or words[3] != "on" or not words[2].isdigit():
        return False
    if words[4] != socket.gethostname():
        return False  # another host's: only its lease running out tells
    try:
        os.kill(int(words[2]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # runs, as another user
    return False


@contextmanager
def sole_watcher(where: RedisSettings | str, key_prefix: str, mailbox: str, on_lost: Callable[[], None],
                 lease_s: float = LEASE_S) -> Iterator[None]:
    """Hold the mailbox's lease for the ``with`` block (renewed from a thread); raise
    :class:`AlreadyWatched` when another watch holds it; ``on_lost`` is called when the
    lease could not be kept (the block should stop), and :class:`LeaseLost` is raised
    when the block has ended."""
    lease = WatchLease(where, key_prefix, mailbox, lease_s)
    try:
        taken_at = time.monotonic()  # the lease runs from no earlier than this
        try:
            holder = lease.take()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            raise LeaseUnreachable(f"cannot reach Redis to take the bounce mailbox's watch lease "
                             f"({e})") from None
        if holder is not None:
            raise AlreadyWatched(
                f"another 'bounces watch' already reads this mailbox ({holder}); only one may: "
                f"stop that one first (a watch that was killed lets go within {lease_s:g} s)")
        done, lost = threading.Event(), threading.Event()

        def stop_block() -> None:
            lost.set()
            on_lost()
        renewer = threading.Thread(target=_renew,
                                   args=(lease, done, stop_block, taken_at + lease_s, lease_s),
                                   name="bounce-watch-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join(lease_s)
            try:
                lease.give_up()
            except redis.RedisError:
                pass  # it runs out by itself
        if lost.is_set():
            raise LeaseLost("the bounce watch stopped: it could not keep its lease on the "
                            "mailbox (the log says why), and another watch may read it now; "
                            "start it again (systemd does)")
    finally:
        lease.close()


def _renew(lease: WatchLease, done: threading.Event, on_lost: Callable[[], None],
           held_until: float, lease_s: float) -> None:
    """Renew every ``lease.every_s`` until ``done``; ``held_until`` (monotonic) is when the
    lease runs out at the earliest: ``lease_s`` after the last renewal was sent."""
    pause = lease.every_s
    while not done.wait(pause):
        sent = time.monotonic()
        expired = threading.Event()

        def ran_out() -> None:
            expired.set()
            log.warning("bounce mailbox: the watch's lease ran out while its renewal still "
                        "waits for Redis (another watch may read the mailbox now); stopping")
            on_lost()
        # a renewal hung past the lease's end (a host silent for its socket timeout)
        watchdog = threading.Timer(max(0.0, held_until - sent), ran_out)
        watchdog.daemon = True
        watchdog.start()
        try:
            renewed: bool | None = lease.renew()
        except redis.RedisError as e:
            renewed, why = None, e
        finally:
            watchdog.cancel()
        if expired.is_set():
            return
        if renewed:
            held_until, pause = sent + lease_s, lease.every_s
            continue
        if renewed is False:
            log.warning("bounce mailbox: the watch's lease ran out (another watch may read "
                        "the mailbox now); stopping")
            on_lost()
            return
        if time.monotonic() + lease.every_s >= held_until:
            log.warning("bounce mailbox: cannot renew the watch's lease (%s) before it runs "
                        "out in %.0f s; giving it up and stopping", why,
                        max(0.0, held_until - time.monotonic()))
            on_lost()
            return
        log.warning("bounce mailbox: cannot renew the watch's lease: %s; trying again", why)
        pause = min(RETRY_PAUSE_S, lease.every_s)
