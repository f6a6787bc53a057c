"""Latency and memory: a steady stream of hold_ready events through the real worker.

p50/p99 from enqueue (just before the producer's MULTI) to the sink's 250 (the
aiosmtpd sink stamps each message just before it answers 250), and the peak RSS
(VmHWM) of the worker process over the run.

    .venv/bin/python bench/latency.py [--rate 50] [--duration 60]

Targets: p99 < 100 ms at 50 events/s; worker peak RSS < 120 MB.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (ROOT, AiosmtpdSink, Worker, activate_patrons, address,  # noqa: E402
                    enqueue_raw, hold_event, key_space, queue_drained)


def measure(rate: float, duration: float, tree: Path = ROOT) -> dict[str, float]:
    """A steady ``rate`` of events for ``duration`` s through the worker of ``tree``:
    latency enqueue → 250 (p50, p99, max, in ms), events missing, peak RSS (MB)."""
    n = int(rate * duration)
    with key_space() as space:
        activate_patrons(space, n)
        sink = AiosmtpdSink()
        w = Worker(space, sink.port, tree=tree)
        client = space.client()
        sent_at: dict[str, float] = {}
        try:
            t0 = time.monotonic()
            for i in range(n):
                due = t0 + i / rate
                pause = due - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                sent_at[address(i)] = time.time()
                enqueue_raw(client, space.namespace, [hold_event(i, space.run)])
            deadline = time.monotonic() + 60
            while sink.count() < n and time.monotonic() < deadline:
                time.sleep(0.05)
            while not queue_drained(client, space.namespace) and time.monotonic() < deadline:
                time.sleep(0.05)
            rss = w.peak_rss_mb()
        finally:
            w.stop()
            sink.stop()
            client.close()
    lat = sorted((t - sent_at[rcpt]) * 1000 for t, rcpt in sink.records if rcpt in sent_at)
    return {"n": n, "missing": n - len({r for _, r in sink.records}),
            "p50": statistics.median(lat), "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
            "max": lat[-1], "rss_mb": rss}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rate", type=float, default=50.0, help="events per second")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds")
    a = ap.parse_args()
    r = measure(a.rate, a.duration)
    p99, rss = r["p99"], r["rss_mb"]
    print(f"\nlatency at {a.rate:.0f} events/s for {a.duration:.0f} s ({r['n']} events, "
          f"{r['missing']} missing)")
    print("| figure | measured | target |")
    print("|---|---:|---|")
    print(f"| p50 enqueue → 250 | {r['p50']:.1f} ms | |")
    print(f"| p99 enqueue → 250 | {p99:.1f} ms | < 100 ms {'ok' if p99 < 100 else 'MISSED'} |")
    print(f"| max | {r['max']:.1f} ms | |")
    print(f"| worker peak RSS | {rss:.0f} MB | < 120 MB {'ok' if rss < 120 else 'MISSED'} |")
    return 0 if p99 < 100 and rss < 120 and not r["missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
