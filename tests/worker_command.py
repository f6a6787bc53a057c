"""``omitama-notify worker`` as an operator runs it, for the fault tests and the benchmarks.

The command runs in its own session (so a stop reaches dramatiq's main process and
its workers alike); its output is kept, and read for readiness, the worker process
ids, their CPU time and peak memory.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.helpers import wait_for

ROOT = Path(__file__).resolve().parents[1]
READY = "Worker process is ready for action"


class WorkerCommand:
    def __init__(self, smtp_port: int, processes: int | None = 1, threads: int | None = 8,
                 *, tree: Path = ROOT, prefix: list[str] | None = None, **env: str) -> None:
        """``processes``/``threads`` None: the settings' own ([worker] in settings.toml).
        ``tree``: the source tree whose ``worker`` package runs (bench/compare.py runs
        another commit's checkout with this one's virtualenv). ``prefix``: what the
        command line starts with, e.g. ``ip netns exec NAME`` (tests/netlab.py), which
        execs the command: the process is still the worker's."""
        self.tree = tree
        self.prefix = list(prefix or [])
        self.env = {**os.environ, "OMITAMA_NOTIFY_MAIL__TRANSPORT": "smtp",
                    "OMITAMA_NOTIFY_SMTP__PORT": str(smtp_port), **env}
        if processes is not None:
            self.env["OMITAMA_NOTIFY_WORKER__PROCESSES"] = str(processes)
        if threads is not None:
            self.env["OMITAMA_NOTIFY_WORKER__THREADS"] = str(threads)
        if tree != ROOT:  # before the editable install's path to this tree
            self.env["PYTHONPATH"] = str(tree)
            self.env = _known_settings(self.env, tree)
        if processes is None:
            from worker.settings import load_settings
            processes = load_settings(environ=self.env).worker.processes
        self.processes = processes
        self.log: list[str] = []
        self.start()

    def start(self, timeout: float = 60) -> None:
        self.log.append("---- start\n")
        self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", self._cli(), "worker"], cwd=self.tree,
                                     env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while len(self.worker_pids()) < self.processes:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("worker did not start:\n" + self.tail())
            time.sleep(0.05)

    def _cli(self) -> str:
        # the command's module: worker.cli was one module before it became a package
        return "worker.cli.main" if (self.tree / "worker" / "cli" / "main.py").exists() \
            else "worker.cli"

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.log.append(line)

    def worker_pids(self) -> list[int]:
        """The dramatiq worker processes of the latest start."""
        log = list(self.log)
        start = max(i for i, x in enumerate(log) if x == "---- start\n")
        return [int(m.group(1)) for x in log[start:]
                if READY in x and (m := re.search(r"\[PID (\d+)\]", x))]

    def peak_rss_mb(self) -> float:
        """Highest VmHWM (the kernel's peak resident set) of one worker process."""
        peak = 0
        for pid in self.worker_pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
        return peak / 1024

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the worker processes and dramatiq's
        main process: steadier than wall-clock rates on a shared machine."""
        total = 0
        for pid in [self.proc.pid, *self.worker_pids()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])  # utime, stime
            except OSError:
                pass
        return total / os.sysconf("SC_CLK_TCK")

    def kill9(self) -> None:
        """SIGKILL the worker process(es), then the rest of the command: nothing shuts down cleanly."""
        pids = self.worker_pids()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(_running(pid) for pid in pids), timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        """One SIGINT, as Ctrl-C: dramatiq finishes what it holds and acknowledges it."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def tail(self, n: int = 30) -> str:
        return "".join(self.log[-n:])

    def errors(self) -> list[str]:
        return [x for x in self.log if "ERROR" in x or "CRITICAL" in x or "Traceback" in x]


def _known_settings(env: dict[str, str], tree: Path) -> dict[str, str]:
    """``env`` without the OMITAMA_NOTIFY_<SECTION>__ settings of sections an older tree
    has not got (its settings refuse them): only its settings.toml's sections pass."""
    sections = set(re.findall(r"^\[([a-z_]+)\]", (tree / "settings.toml").read_text(), re.M))
    return {k: v for k, v in env.items() if not k.startswith("OMITAMA_NOTIFY_")
            or k.split("__")[0].removeprefix("OMITAMA_NOTIFY_").lower() in sections}


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a killed process its parent has not reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
