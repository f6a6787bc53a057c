"""`omitama-notify worker` as an operator runs it: a real dramatiq CLI with our settings."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.helpers import hold_event, wait_for, with_store
from tests.helpers import set_contact
from worker.contact import ContactState

ROOT = Path(__file__).resolve().parents[1]


def test_worker_command_processes_events_and_stops_cleanly(clean_redis, settings, tmp_path):
    outbox = tmp_path / "outbox"
    env = {**os.environ, "OMITAMA_NOTIFY_MAIL__OUTBOX_DIR": str(outbox),
           "OMITAMA_NOTIFY_WORKER__PROCESSES": "2", "OMITAMA_NOTIFY_WORKER__THREADS": "2",
           "OMITAMA_NOTIFY_LOGGING__SUMMARY_INTERVAL_S": "0.5"}
    with_store(settings, lambda s: set_contact(s, "C1", ContactState.ACTIVE,
                                                 address="a@example.jp"))
    proc = subprocess.Popen([sys.executable, "-m", "worker.cli.main", "worker"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []

    def read() -> None:
        for line in proc.stdout or ():
            lines.append(line)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        events = "\n".join(json.dumps(hold_event(f"H{i}", "C1")) for i in range(10))
        r = subprocess.run([sys.executable, "-m", "worker.cli.main", "enqueue", "-"], input=events,
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        wait_for(lambda: len(list(outbox.glob("*.eml"))) == 10, timeout=60)
        # the processes' summaries of their intervals have counted all ten
        wait_for(lambda: sum(_sent("".join(lines))) == 10, timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C in a terminal does
        proc.wait(timeout=60)
        reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert f"each mail is written as an .eml file to {outbox}" in out
    assert "2 process(es) × 2 thread(s)" in out
    # dramatiq itself says how many worker processes it ran
    assert out.count("Worker process is ready for action.") == 2, out
    assert len(list(outbox.glob("*.eml"))) == 10  # and no more once stopped
    # the per-notice lines are DEBUG; each process says at INFO what it did, and no more
    assert sum(_sent(out)) == 10, out
    # ... and the first notice of an interval has a line of its own, seen at the default level
    assert re.search(r"\[INFO\] hold H\d: notice sent; the next ones in these 0\.5 s are counted",
                     out), out
    # every log line — dramatiq's main process, its workers, ours — in Tokyo time with offset
    logged = [line for line in out.splitlines() if line.startswith("[")]
    assert len(logged) > 10
    for line in logged:
        assert re.match(r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+09:00\] \[PID \d+\]", line), line


def _sent(out: str) -> list[int]:
    """The "sent" counts of the processes' interval summaries in the output so far."""
    return [int(n) for n in re.findall(r"notices in the last 0\.5 s: sent (\d+)", out)]
