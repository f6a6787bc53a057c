"""Two worker "hosts" on one machine: network namespaces joined to the root namespace, for
the partition test (tests/test_partition.py).

    root namespace:  bridge o<run>br, 10.231.N.1/24 — Redis and the relay listen here
       ├─ veth o<run>a ── o<run>A in namespace omi-<run>-a, 10.231.N.2/24  (host A)
       └─ veth o<run>b ── o<run>B in namespace omi-<run>-b, 10.231.N.3/24  (host B)

:meth:`NetLab.cut` sets the root end of a host's veth down: the host sees its link lose
carrier (as a pulled cable or a dead switch port), its processes stay alive, its address
and routes stay; :meth:`NetLab.restore` brings it back. Needs root (``ip netns``, from
iproute2). N is a /24 of 10.231.0.0/16 that no address or route of the machine touches,
chosen under a lock so that parallel runs never share one; the names carry the run's id.
:meth:`NetLab.slow` limits what a host sends (``tc`` tbf), :meth:`NetLab.unsent` lists
its TCP sockets that still hold something to get across (``ss``), and :class:`Monitor`
keeps the commands that reach Redis from one host's address.

:meth:`NetLab.close` removes everything it made — the processes still running in its
namespaces (by pid), the namespaces, the veths and the bridge — and is safe to call
after a failed or partial :meth:`NetLab.open` (use it in ``finally``).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis

IP = "/usr/sbin/ip" if Path("/usr/sbin/ip").exists() else "ip"
_LOCK = Path("/run/lock") if Path("/run/lock").is_dir() else Path("/tmp")
BASE = ipaddress.ip_network("10.231.0.0/16")  # private, and rarely used by anyone
# TCP states in which a SYN or FIN is sent and not yet acknowledged
_UNSETTLED = {"SYN-SENT", "FIN-WAIT-1", "CLOSING", "LAST-ACK"}


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([IP, *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def unavailable() -> str:
    """Why namespaces cannot be made here, or "" when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    try:
        probe = f"omi-probe-{uuid.uuid4().hex[:8]}"
        made = _ip("netns", "add", probe, check=False)
    except FileNotFoundError:
        return "iproute2's ip is not installed (apt-get install iproute2)"
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return ""


def _taken() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network the machine has an address or a route in."""
    nets = []
    for line in (_ip("-4", "-o", "addr").stdout + _ip("-4", "route").stdout).splitlines():
        for word in line.split():
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


@dataclass
class NetLab:
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    subnet: ipaddress.IPv4Network | None = None
    made: list[tuple[str, ...]] = field(default_factory=list)  # what close() undoes

    @property
    def bridge(self) -> str:
        return f"o{self.run}br"

    def ns(self, host: str) -> str:
        return f"omi-{self.run}-{host}"

    def veth(self, host: str) -> str:
        """The root namespace's end of the host's link (what :meth:`cut` sets down)."""
        return f"o{self.run}{host}"

    @property
    def root_addr(self) -> str:
        """The root namespace's address on the bridge: Redis and the relay listen here."""
        assert self.subnet is not None
        return str(self.subnet[1])

    def addr(self, host: str) -> str:
        assert self.subnet is not None
        return str(self.subnet[2 + "ab".index(host)])

    def open(self) -> "NetLab":
        with open(_LOCK / "omitama-netlab.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # choosing and taking the subnet is one step
            taken = _taken()
            self.subnet = next(n for n in BASE.subnets(new_prefix=24)
                               if n.network_address.packed[2] != 0
                               and not any(n.overlaps(t) for t in taken if t.prefixlen > 0))
            _ip("link", "add", self.bridge, "type", "bridge")
            self.made.append(("link", self.bridge))
            _ip("addr", "add", f"{self.root_addr}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
        for host in "ab":
            ns, root_end, inner = self.ns(host), self.veth(host), self.veth(host.upper())
            _ip("netns", "add", ns)
            self.made.append(("netns", ns))
            _ip("link", "add", root_end, "type", "veth", "peer", "name", inner, "netns", ns)
            self.made.append(("link", root_end))  # deleting one end deletes the pair
            _ip("link", "set", root_end, "master", self.bridge)
            _ip("link", "set", root_end, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", inner)
            _ip("-n", ns, "link", "set", inner, "up")
        return self

    def prefix(self, host: str) -> list[str]:
        """The command line prefix that runs a program on ``host``."""
        return [IP, "netns", "exec", self.ns(host)]

    def slow(self, host: str, kbit: int) -> None:
        """Limit what ``host`` sends to ``kbit`` kbit/s (a token bucket on its side of the
        link): a mail takes a moment to leave it, so a cut can land mid-message."""
        _ip("netns", "exec", self.ns(host), "tc", "qdisc", "add", "dev", self.veth(host.upper()),
            "root", "tbf", "rate", f"{kbit}kbit", "burst", "1600", "latency", "10s")

    def cut(self, host: str) -> None:
        _ip("link", "set", self.veth(host), "down")

    def restore(self, host: str) -> None:
        _ip("link", "set", self.veth(host), "up")

    def unsent(self, host: str) -> list[str]:
        """The host's TCP sockets that still have something to get across — bytes not yet
        acknowledged (Send-Q), a SYN or FIN unanswered — including sockets its programs
        already closed: what a returning host may yet deliver late."""
        out = subprocess.run([*self.prefix(host), "ss", "-tnH", "state", "all"],
                             check=True, capture_output=True, text=True).stdout
        return [line for line in out.splitlines() if line.split()[0] in _UNSETTLED
                or (line.split()[0] != "LISTEN" and int(line.split()[2]) > 0)]

    def close(self) -> None:
        for kind, name in reversed(self.made):
            if kind == "netns":
                self._kill_inside(name)
                _ip("netns", "del", name, check=False)
            else:
                _ip("link", "del", name, check=False)
        self.made.clear()

    @staticmethod
    def _kill_inside(ns: str) -> None:
        """SIGKILL what still runs in ``ns`` (only our test's processes run there), by pid."""
        for pid in _ip("netns", "pids", ns, check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass


class Monitor:
    """Redis's MONITOR, keeping the commands that come from one host's address (with the
    time each was seen): what reached Redis from a host, late ones included."""

    def __init__(self, url: str, client_ip: str) -> None:
        self.client = redis.Redis.from_url(url, socket_timeout=None)
        self.ip = client_ip
        self.commands: list[str] = []
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "Monitor":
        self._monitor = self.client.monitor().__enter__()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                c = self._monitor.next_command()
            except (redis.RedisError, OSError, ValueError):
                return  # closed by __exit__
            if c.get("client_address") == self.ip:
                self.commands.append(str(c.get("command", "")))
                self.times.append(time.time())

    def seen_since(self, t: float) -> bool:
        return any(x >= t for x in self.times)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._monitor.connection.disconnect()
        self._thread.join(5)
        self.client.close()
