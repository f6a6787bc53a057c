"""A private authoritative DNS server for tests: Debian's NSD on loopback, throw-away zones.

Installed by .ci/run (apt-get install nsd, no system instance started). Started as
``nsd -d`` with its own config, pid, database-free zone files in a temporary folder, on a
free port; stopped (and its folder removed) when the test is over.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import free_port

NSD = shutil.which("nsd") or "/usr/sbin/nsd"

CONF = """server:
  ip-address: 127.0.0.1
  port: {port}
  username: ""
  chroot: ""
  zonesdir: "{dir}"
  database: ""
  zonelistfile: "{dir}/zone.list"
  xfrdfile: "{dir}/xfrd.state"
  xfrdir: "{dir}"
  pidfile: "{dir}/nsd.pid"
  logfile: "{dir}/nsd.log"
  server-count: 1
  do-ip6: no
  verbosity: 1
remote-control:
  control-enable: no
"""


def available() -> str | None:
    """None when NSD can run here, else why not (tests skip; CI requires it)."""
    if os.environ.get("OMITAMA_TEST_REQUIRE_MAIL_SERVERS"):
        return None
    if not Path(NSD).exists():
        return "Debian's nsd is not installed (apt-get install nsd; .ci/run does)"
    return None


def zone_text(origin: str, records: list[str]) -> str:
    """A zone file: SOA and NS of our own, then ``records`` (relative or absolute names)."""
    head = [f"$ORIGIN {origin}.", "$TTL 60",
            f"@ IN SOA ns.{origin}. admin.{origin}. 1 3600 600 86400 60",
            f"@ IN NS ns.{origin}.", "ns IN A 127.0.0.1"]
    return "\n".join(head + records) + "\n"


class Nsd:
    def __init__(self, folder: Path, zones: dict[str, list[str]]) -> None:
        self.dir = folder
        self.port = _free_udp_and_tcp_port()
        conf = CONF.format(port=self.port, dir=folder)
        for origin, records in zones.items():
            (folder / f"{origin}.zone").write_text(zone_text(origin, records))
            conf += f"zone:\n  name: {origin}\n  zonefile: \"{origin}.zone\"\n"
        (folder / "nsd.conf").write_text(conf)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Nsd":
        self.proc = subprocess.Popen([NSD, "-d", "-c", str(self.dir / "nsd.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nsd stopped at start: {self.log()}"
                                   f"{self.proc.stderr.read().decode(errors='replace') if self.proc.stderr else ''}")
            if self._answers():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"nsd did not answer on port {self.port}: {self.log()}")

    def _answers(self) -> bool:
        import dns.message
        import dns.query
        try:
            dns.query.udp(dns.message.make_query(next(iter(self.zones())), "SOA"),
                          "127.0.0.1", port=self.port, timeout=0.3)
            return True
        except (OSError, dns.exception.Timeout):
            return False

    def zones(self) -> list[str]:
        return [p.name[:-5] for p in self.dir.glob("*.zone")]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        p = self.dir / "nsd.log"
        return p.read_text(errors="replace") if p.exists() else ""


def _free_udp_and_tcp_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (NSD listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port for the DNS server")
