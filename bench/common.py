"""What the benchmarks share: a private key space on the local Redis, the two SMTP sinks,
the real worker command, raw enqueueing and the raw SMTP baseline.

Everything runs on this machine: Redis at ``BENCH_REDIS_URL`` (default
redis://127.0.0.1:6379/13), the sink on a free loopback port, the worker as
``omitama-notify worker`` (the dramatiq CLI with the project's settings) in a
subprocess. Each run uses its own key prefix and dramatiq namespace and deletes
its keys at the end.
"""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Iterator

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.worker_command import WorkerCommand  # noqa: E402

PY = sys.executable
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SMTP_SINK = "/usr/sbin/smtp-sink"
LOG_DIR = Path("/tmp/omitama-bench-logs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


# -- a private key space ---------------------------------------------------------------

@dataclass
class Space:
    """A unique key prefix + dramatiq namespace on the bench Redis."""
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def prefix(self) -> str:
        return f"bench{self.run}:"

    @property
    def namespace(self) -> str:
        return f"bench{self.run}-dramatiq"

    def env(self) -> dict[str, str]:
        return {"OMITAMA_NOTIFY_REDIS__URL": REDIS_URL,
                "OMITAMA_NOTIFY_REDIS__KEY_PREFIX": self.prefix,
                "OMITAMA_NOTIFY_REDIS__NAMESPACE": self.namespace,
                "OMITAMA_NOTIFY_REDIS__START_PRIVATE": "false",
                # one mail per hold, the figures' basis; throughput.py --digest measures
                # the default window apart
                "OMITAMA_NOTIFY_DIGEST__GATHER_S": "0"}

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(REDIS_URL)

    def clean(self) -> int:
        c = self.client()
        n = 0
        for pattern in (f"{self.prefix}*", f"{self.namespace}:*"):
            keys = list(c.scan_iter(pattern, count=2000))
            for i in range(0, len(keys), 1000):
                n += c.delete(*keys[i:i + 1000])
        c.close()
        return n


@contextmanager
def key_space() -> Iterator[Space]:
    space = Space()
    os.environ.update(space.env())  # worker.settings reads them in this process too
    try:
        yield space
    finally:
        space.clean()


def settings_for(space: Space, **env: str) -> Any:
    from worker.settings import load_settings
    return load_settings(environ={**os.environ, **space.env(), **env})


# -- events and patrons ----------------------------------------------------------------

PICKUP_BY = (date.today() + timedelta(days=7)).isoformat()


def hold_event(i: int, run: str) -> dict[str, Any]:
    return {"event_id": f"ev-{run}-{i}", "type": "hold_ready", "hold_id": f"H{run}-{i:07d}",
            "card_number": f"21{i:08d}",
            "item": {"title": "吾輩は猫である", "author": "夏目漱石", "material": "book"},
            "pickup_branch": ("ogawa", "tamari", "minori")[i % 3],
            "ready_at": "2026-11-29T10:00:00+09:00", "pickup_by": PICKUP_BY,
            "contact": "email", "patron_name": "山田 太郎"}


def address(i: int) -> str:
    return f"p{i}@example.jp"


def index_of(rcpt: str) -> int:
    return int(rcpt.strip("<>").split("@")[0][1:])


def activate_patrons(space: Space, n: int) -> None:
    """n patrons with an approved address, set up through the production transitions
    (registered, then approved), 500 cards per MULTI: tests.helpers.activate_many."""
    from tests.helpers import activate_many
    from worker.store.core import Store

    async def go() -> None:
        store = Store.connect(REDIS_URL, space.prefix)
        try:
            await activate_many(store, {f"21{i:08d}": address(i) for i in range(n)},
                                why="bench")
        finally:
            await store.close()
    asyncio.run(go())


def envelope(event: dict[str, Any], queue: str = "notifications") -> tuple[str, bytes]:
    """A dramatiq message as docs/ils-integration.md tells a non-Python producer to write it."""
    rid = str(uuid.uuid4())
    msg = {"queue_name": queue, "actor_name": event["type"], "args": [event], "kwargs": {},
           "options": {"redis_message_id": rid}, "message_id": str(uuid.uuid4()),
           "message_timestamp": int(time.time() * 1000)}
    return rid, json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode()


def enqueue_raw(client: redis.Redis, namespace: str, events: list[dict[str, Any]],
                chunk: int = 500) -> None:
    """HSET + RPUSH per event, pipelined in MULTI chunks (the producer recipe of docs/ils-integration.md)."""
    q = f"{namespace}:notifications"
    for i in range(0, len(events), chunk):
        p = client.pipeline(transaction=True)
        for ev in events[i:i + chunk]:
            rid, data = envelope(ev)
            p.hset(f"{q}.msgs", rid, data)
            p.rpush(q, rid)
        p.execute()


def queue_drained(client: redis.Redis, namespace: str) -> bool:
    q = f"{namespace}:notifications"
    p = client.pipeline(transaction=False)
    p.hlen(f"{q}.msgs")
    p.hlen(f"{q}.DQ.msgs")
    return not any(p.execute())


# -- sinks -------------------------------------------------------------------------------

class Sink:
    kind = ""
    port = 0

    def count(self) -> int: ...
    def stop(self) -> None: ...


class AiosmtpdSink(Sink):
    """bench/aiosmtpd_sink.py in its own process (so it has a core of its own, as a relay
    would); it reports ``<unix time of the 250> <recipient>`` per message on stdout."""
    kind = "aiosmtpd"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([PY, str(ROOT / "bench" / "aiosmtpd_sink.py"), str(self.port)],
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.records: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_port(self.port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t, _, rcpt = line.strip().partition(" ")
            if rcpt:
                with self.lock:
                    self.records.append((float(t), rcpt))

    def count(self) -> int:
        with self.lock:
            return len(self.records)

    def reset(self) -> None:
        with self.lock:
            self.records.clear()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class CSink(Sink):
    """Postfix's ``smtp-sink`` (C); ``-c`` makes it print ``msg=N`` after each message."""
    kind = "smtp-sink"

    def __init__(self) -> None:
        if not Path(SMTP_SINK).exists():
            raise RuntimeError(f"{SMTP_SINK} missing: apt-get install -y postfix "
                               "(DEBIAN_FRONTEND=noninteractive; it need not run)")
        self.port = free_port()
        cmd = [SMTP_SINK, "-c"] + (["-u", "nobody"] if os.geteuid() == 0 else []) + [
            f"127.0.0.1:{self.port}", "256"]
        # a pty: smtp-sink buffers its counter line when stdout is a pipe
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.DEVNULL)
        os.close(slave)
        self.base = 0
        self.msgs = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        wait_port(self.port)

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *done, buf = buf.split(b"\r")
            for rec in reversed(done):
                m = re.search(rb"mesg=(\d+)", rec)
                if m:
                    self.msgs = int(m.group(1))
                    break

    def count(self) -> int:
        return self.msgs - self.base

    def reset(self) -> None:
        self.base = self.msgs

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_sink(kind: str) -> Sink:
    return AiosmtpdSink() if kind == "aiosmtpd" else CSink()


# -- the raw baseline ----------------------------------------------------------------------

def prebuilt(space: Space, n: int) -> list[Any]:
    """n notices built by the worker's own composer, flattened to bytes beforehand."""
    from worker.mail.compose import Composer, new_token
    from worker.ils.events import parse_event

    s = settings_for(space)
    comp = Composer(s)
    out = []
    for i in range(n):
        ev = parse_event(hold_event(i, "raw"), set(s.branches))
        out.append(comp.hold_ready(ev, address(i), new_token()))  # type: ignore[arg-type]
    return out


def raw_rate(sink: Sink, notices: list[Any]) -> float:
    """mails/s over one reused aiosmtplib connection, counted to the last 250."""
    import aiosmtplib

    async def go() -> float:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=sink.port, timeout=30)
        await client.connect()
        t0 = time.perf_counter()
        for n in notices:
            await client.sendmail(n.sender, [n.recipient], n.data)
        dt = time.perf_counter() - t0
        await client.quit()
        return len(notices) / dt
    return asyncio.run(go())


# -- the real worker -----------------------------------------------------------------------

def take_purge_days(space: Space) -> None:
    """Take the daily purge's marker of today and tomorrow (Tokyo) in the bench's key space,
    as a worker that purged already would have: a worker purges at start when the day's
    purge is due (worker/queue/periodic.py), and a fresh key space has no marker, so every
    run paid a purge walking all its patrons' audit lists (~4 % of the CPU per notice,
    bench/README.md). The worker still asks (one SET NX); the runs measure notices."""
    from worker.jdate import now_tokyo
    from worker.store.core import Store

    async def go() -> None:
        store = Store.connect(REDIS_URL, space.prefix)
        try:
            today = now_tokyo().date()
            for day in (today, today + timedelta(days=1)):
                await store.retention.take_day(day.isoformat(), "bench")
        finally:
            await store.close()
    asyncio.run(go())


class Worker(WorkerCommand):
    """``omitama-notify worker`` (tests/worker_command.py) on a bench key space, with the
    Prometheus exposition on, its output saved to LOG_DIR when it stops."""

    def __init__(self, space: Space, sink_port: int, *, processes: int | None = None,
                 threads: int | None = None, extra_env: dict[str, str] | None = None,
                 tree: Path = ROOT) -> None:
        self.run = space.run
        # extra_env overrides the space's own (--digest sets the window the space pins to 0)
        env = {**space.env(), "OMITAMA_NOTIFY_METRICS__PORT": str(free_port()), **(extra_env or {})}
        take_purge_days(space)
        super().__init__(sink_port, processes, threads, tree=tree, **env)

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            LOG_DIR.mkdir(exist_ok=True)
            (LOG_DIR / f"worker-{self.run}.log").write_text("".join(self.log))


def worker_rate(space: Space, sink: Sink, n: int, *, processes: int | None = None,
                threads: int | None = None, extra_env: dict[str, str] | None = None,
                timeout: float = 300, tree: Path = ROOT) -> dict[str, Any]:
    """n hold_ready events through the real worker into the sink: mails/s from the first
    enqueue to the last 250, the worker's CPU per notice, its peak RSS, and sanity counts."""
    client = space.client()
    events = [hold_event(i, space.run) for i in range(n)]
    w = Worker(space, sink.port, processes=processes, threads=threads, extra_env=extra_env,
               tree=tree)
    try:
        sink.reset()
        cpu0 = w.cpu_s()
        t0 = time.perf_counter()
        enqueue_raw(client, space.namespace, events)
        deadline = time.monotonic() + timeout
        while sink.count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {sink.count()} of {n} delivered in {timeout} s:\n"
                                   + "".join(w.log[-20:]))
            time.sleep(0.002)
        dt = time.perf_counter() - t0
        cpu = w.cpu_s() - cpu0
        while not queue_drained(client, space.namespace) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        extra = sink.count() - n
        rss = w.peak_rss_mb()
    finally:
        w.stop()
        client.close()
    return {"rate": n / dt, "seconds": dt, "delivered": n + extra, "extra": extra,
            "rss_mb": rss, "errors": w.errors(), "cpu_ms": cpu * 1000 / n}
