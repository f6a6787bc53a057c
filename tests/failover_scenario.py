"""The failover of issue 19, played once on real servers: shared by tests/test_failover.py
(which asserts) and bench/failover.py (which prints the figures).

On the lab of tests/redis_lab.py (a primary, one replica, three Sentinels on loopback):

1. the real ``omitama-notify worker`` (2 processes) with ``[redis] sentinels`` and
   ``master_name``, mailing into an aiosmtpd sink that keeps every message;
2. an ILS (tests/ils_producer.py) writing a steady stream of holds, each to an active
   patron; staff approving registrations one after another (tests/failover_staff.py);
3. the replica is stalled (SIGSTOP, and the primary drops its link) for ``stall_s``, so
   the primary acknowledges writes no replica has; then ``kill -9`` of the primary;
4. Sentinel promotes the replica; the worker, the ILS and staff find it by themselves;
   the stream goes on for ``after_s``, then stops; the worker goes idle;
5. the ILS's reconciliation pass: the holds it sent that have no outcome
   (``omitama-notify holds missing``) are sent again;
6. the old primary comes back (empty, as a replica); nothing may change.

Everything is recorded in a :class:`Result`; nothing is asserted here.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.common import hold_event, index_of
from tests.failover_staff import StaffAction, StaffDesk, active_cards, set_up_patrons
from tests.helpers import Received, SmtpSink, settle, wait_for
from tests.ils_producer import Producer, primary_client
from tests.redis_lab import Lab, Node
from tests.worker_command import ROOT, WorkerCommand

# short leases and sweeps, so that what the failover strands is found in seconds
FAST = {
    "OMITAMA_NOTIFY_DELIVERY__LEASE_S": "2",
    "OMITAMA_NOTIFY_DELIVERY__SWEEP_INTERVAL_S": "1",
    "OMITAMA_NOTIFY_DELIVERY__MIN_BACKOFF_S": "0.5",
    "OMITAMA_NOTIFY_DELIVERY__MAX_BACKOFF_S": "2",
    "OMITAMA_NOTIFY_REDIS__HEARTBEAT_TIMEOUT_MS": "3000",
    "OMITAMA_NOTIFY_SMTP__TIMEOUT": "5",
    "OMITAMA_NOTIFY_DIGEST__GATHER_S": "0",
    "OMITAMA_NOTIFY_METRICS__PORT": "0",
}
TERMINAL = ("mailed", "listed")  # the outcomes that end a hold's notice


@dataclass
class Result:
    run: str
    # every moment here is time.time(), as the sink's (tests/helpers.py) and, in ms, the
    # outcome stream's ids (Redis's clock: the same machine)
    acked: dict[str, float]                 # hold → when the ILS was told it is queued
    mails: list[Received] = field(default_factory=list)
    t_stall: float = 0.0
    t_kill: float = 0.0
    t_promoted: float = 0.0
    lost_before: list[str] = field(default_factory=list)
    lost_after: list[str] = field(default_factory=list)
    stream: list[tuple[int, str, str]] = field(default_factory=list)  # (ms, hold, outcome)
    staff: list[StaffAction] = field(default_factory=list)
    staff_active: set[str] = field(default_factory=set)           # after the failover
    producer_failures: int = 0
    unreplicated_lost: bool = False         # a write acknowledged after the stall was lost
    rejoined_role: str = ""
    mails_after_rejoin: int = 0
    stream_after_rejoin: list[tuple[int, str, str]] = field(default_factory=list)
    staff_active_after_rejoin: set[str] = field(default_factory=set)
    worker_errors: list[str] = field(default_factory=list)
    stuck: list[dict[str, int]] = field(default_factory=list)  # what never went idle

    def hold_of(self, m: Received) -> str:
        return str(hold_event(index_of(m.rcpt_tos[0]), self.run)["hold_id"])

    def mails_by_hold(self) -> dict[str, list[Received]]:
        by: dict[str, list[Received]] = defaultdict(list)
        for m in self.mails:
            by[self.hold_of(m)].append(m)
        return dict(by)

    def duplicated(self) -> dict[str, list[str]]:
        """Holds mailed more than once → the Message-ID of each of their mails."""
        return {h: [message_id(m) for m in ms] for h, ms in self.mails_by_hold().items()
                if len(ms) > 1}

    @property
    def outcomes(self) -> dict[str, list[str]]:
        """hold → its terminal outcomes (mailed, listed) in the outcome stream."""
        return terminal(self.stream)

    def in_flight(self) -> set[str]:
        """Holds mailed before the promotion whose outcome the new primary did not get:
        its entry in the outcome stream (written with the hold's record, in one step) is
        not among those from before the kill (entries made after the promotion have
        later ids). These are the holds that may be mailed again."""
        durable = {h for ms, h, o in self.stream if ms < self.t_kill * 1000 and o in TERMINAL}
        return {h for h, ms in self.mails_by_hold().items()
                if min(m.at for m in ms) <= self.t_promoted and h not in durable}

    def next_mail_s(self) -> float | None:
        """Seconds from the kill to the first mail of a hold the ILS sent after it."""
        after = [m.at for m in self.mails if m.at > self.t_kill
                 and self.acked.get(self.hold_of(m), 0) > self.t_kill]
        return min(after) - self.t_kill if after else None

    def figures(self) -> dict[str, Any]:
        nxt = self.next_mail_s()
        kept = {a.card for a in self.staff if a.kept}
        unsure = {a.card for a in self.staff} - kept
        return {
            "holds": len(self.acked), "mails": len(self.mails),
            "duplicates": len(self.duplicated()), "in flight at the kill": len(self.in_flight()),
            "lost before reconciliation": len(self.lost_before),
            "lost after reconciliation": len(self.lost_after),
            "kill → promotion (s)": round(self.t_promoted - self.t_kill, 2),
            "kill → next mail (s)": None if nxt is None else round(nxt, 2),
            "staff actions confirmed (lost) / not confirmed (lost)":
                f"{len(kept)} ({len(kept - self.staff_active)}) / "
                f"{len(unsure)} ({len(unsure - self.staff_active)})",
            "ILS writes refused during the failover": self.producer_failures,
        }


def message_id(m: Received) -> str:
    return str(email.message_from_bytes(m.data)["Message-ID"] or "").strip()


def worker_env(lab: Lab, prefix: str, namespace: str) -> dict[str, str]:
    """The settings of every process of the run: the Sentinels, not a server."""
    return {**FAST,
            "OMITAMA_NOTIFY_REDIS__SENTINELS": ",".join(lab.sentinel_addrs),
            "OMITAMA_NOTIFY_REDIS__MASTER_NAME": lab.master_name,
            # with Sentinels only its db (and user, password) counts: the db the ILS writes
            "OMITAMA_NOTIFY_REDIS__URL": "redis://127.0.0.1:6379/0",
            "OMITAMA_NOTIFY_REDIS__KEY_PREFIX": prefix,
            "OMITAMA_NOTIFY_REDIS__NAMESPACE": namespace,
            "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false",
            # staff are told an action is done once the replica has it
            "OMITAMA_NOTIFY_STAFF_WRITES__REPLICAS": "1"}


def outcome_stream(client: Any, prefix: str) -> list[tuple[int, str, str]]:
    """The outcome stream as the ILS reads it: (ms of the entry's id, hold, outcome)."""
    return [(int(eid.split(b"-")[0]), f[b"hold_id"].decode(), f[b"outcome"].decode())
            for eid, f in client.xrange(f"{prefix}outcomes")]


def terminal(stream: list[tuple[int, str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for _, hold, outcome in stream:
        if outcome in TERMINAL:
            out[hold].append(outcome)
    return dict(out)


def holds_missing(env: dict[str, str], holds: list[str]) -> list[str]:
    """``omitama-notify holds missing``: the holds read on stdin that have no outcome."""
    p = subprocess.run([sys.executable, "-m", "worker.cli.main", "holds", "missing"],
                       input="".join(f"{h}\n" for h in holds), capture_output=True,
                       text=True, cwd=ROOT, env={**os.environ, **env}, timeout=60)
    if p.returncode not in (0, 1):
        raise RuntimeError(f"holds missing failed ({p.returncode}): {p.stderr.strip()}")
    return [line.strip() for line in p.stdout.splitlines() if line.strip()]


class Failover:
    def __init__(self, lab: Lab, *, run: str, prefix: str, namespace: str,
                 rate: float = 20.0, before_s: float = 5.0, after_s: float = 5.0,
                 stall_s: float = 0.4, staff_every_s: float = 0.25) -> None:
        self.lab, self.run, self.prefix, self.ns = lab, run, prefix, namespace
        self.rate, self.before_s, self.after_s, self.stall_s = rate, before_s, after_s, stall_s
        self.staff_every_s = staff_every_s
        self.env = worker_env(lab, prefix, namespace)
        # the ILS's writes retry themselves; the scenario's reads wait out a failover
        self.client = primary_client(lab.sentinel_addrs, lab.master_name, patience_s=15)
        self.ils = primary_client(lab.sentinel_addrs, lab.master_name)
        self.log: list[str] = []  # the worker's output, for a failure's message
        self.marker = f"{prefix}failover-test:after-the-stall"

    def event(self, i: int) -> dict[str, Any]:
        return hold_event(i, self.run)

    def play(self) -> Result:
        cards = int(self.rate * (self.before_s + self.after_s + 30)) + 100
        staff_cards = int((self.before_s + self.stall_s + 2) / self.staff_every_s) + 10
        staff_pending = set_up_patrons(self.env, cards, staff_cards)
        self.lab.wait_synced()
        sink = SmtpSink()
        sink.start()
        worker = WorkerCommand(sink.port, processes=2, threads=4, **self.env)
        producer = Producer(self.ils, self.ns, self.event, self.rate)
        r = Result(self.run, producer.acked)
        try:
            producer.start()
            desk = StaffDesk(self.env, staff_pending, self.staff_every_s).start()
            settle(self.before_s)
            r.t_stall = self.cut_replica()
            settle(self.stall_s)
            old = self.lab.primary
            desk.stop_soon()  # what it is doing now may straddle the kill
            old.kill9()
            r.t_kill = time.time()
            self.lab.replicas[0].resume()
            self.lab.wait_failover(old)
            r.t_promoted = time.time()
            r.unreplicated_lost = not self.client.exists(self.marker)
            r.staff = desk.join()
            settle(self.after_s)
            producer.stop()
            r.producer_failures = producer.failures
            self.wait_idle(r)
            r.lost_before = holds_missing(self.env, list(producer.acked))
            for h in r.lost_before:  # the reconciliation pass: the same event again
                producer.send(self.event(int(h.rsplit("-", 1)[1])))
            self.wait_idle(r)
            r.lost_after = holds_missing(self.env, list(producer.acked))
            r.mails = sink.messages
            r.stream = outcome_stream(self.client, self.prefix)
            r.staff_active = active_cards(self.env, [a.card for a in r.staff])
            r.rejoined_role = self.rejoin(old)
            r.mails_after_rejoin = len(sink.messages)
            r.stream_after_rejoin = outcome_stream(self.client, self.prefix)
            r.staff_active_after_rejoin = active_cards(self.env, [a.card for a in r.staff])
        finally:
            producer.stop()
            worker.stop()
            sink.stop()
            self.log = worker.log
            r.worker_errors = worker.errors()
            self.client.close()
            self.ils.close()
        return r

    def cut_replica(self) -> float:
        """The replica stops (SIGSTOP) and the primary drops the link to it: from now on
        the primary acknowledges writes that exist nowhere else (on loopback a plain kill
        loses nothing: the replica has already read what the primary sent)."""
        self.lab.replicas[0].pause()
        primary = self.lab.primary.client()
        primary.client_kill_filter(_type="replica")
        primary.set(self.marker, "acknowledged by the primary alone")
        return time.time()

    def wait_idle(self, r: Result, timeout: float = 30) -> None:
        """Until every queued message is acknowledged and no hold is being sent or
        retried (twice, a second apart); if that does not come, what is left is noted
        in ``r.stuck`` and the scenario goes on."""
        q = f"{self.ns}:notifications"

        def left() -> dict[str, int]:
            p = self.client.pipeline(transaction=False)
            for key in (f"{q}.msgs", f"{q}.DQ.msgs"):
                p.hlen(key)
            p.zcard(f"{self.prefix}inflight")
            return {k: n for k, n in zip(("queued", "delayed", "inflight"), p.execute()) if n}

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not left():
                settle(1.0)
                if not left():
                    return
            time.sleep(0.2)
        r.stuck.append(left())

    def rejoin(self, old: Node) -> str:
        """The old primary starts again, empty; Sentinel makes it a replica of the new
        one, which it copies. Then a quiet moment, for anything it could set off."""
        self.lab.restart(old)
        def replica() -> bool:
            try:
                return old.role() == "slave"
            except (redis.RedisError, OSError):  # still starting, or loading the copy
                return False
        wait_for(replica, timeout=30, interval=0.1)
        self.lab.wait_synced()
        settle(2.0)
        return old.role()
