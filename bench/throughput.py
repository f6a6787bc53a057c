"""Throughput as a ratio of the raw limit, measured back to back in one run.

raw:    N notices built by the worker's composer and flattened to bytes beforehand,
        sent over one reused aiosmtplib connection into the sink;
worker: N hold_ready events (the HSET+RPUSH producer recipe of docs/ils-integration.md) through the real
        ``omitama-notify worker`` — Redis broker, contact lookup, idempotency claim,
        rendering, pooled SMTP — into the same sink, timed from the first enqueue to the
        sink's last 250.

    .venv/bin/python bench/throughput.py [--n 3000] [--sink aiosmtpd|smtp-sink|both] [--repeat 3]

Targets with the default worker settings: ratio ≥ 0.8 into aiosmtpd, ≥ 0.5 into smtp-sink.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (activate_patrons, key_space, make_sink, prebuilt, raw_rate,  # noqa: E402
                    worker_rate)

TARGET = {"aiosmtpd": 0.8, "smtp-sink": 0.5}


def measure(kind: str, n: int, repeat: int) -> dict[str, float]:
    raws, workers, ratios, rss, cpu = [], [], [], [], []
    for _ in range(repeat):
        with key_space() as space:
            activate_patrons(space, n)
            sink = make_sink(kind)
            try:
                raw = raw_rate(sink, prebuilt(space, n))
                w = worker_rate(space, sink, n)
            finally:
                sink.stop()
        if w["extra"] or w["errors"]:
            print(f"  WARNING: {w['extra']} extra mails, errors: {w['errors'][:3]}")
        raws.append(raw)
        workers.append(w["rate"])
        ratios.append(w["rate"] / raw)
        rss.append(w["rss_mb"])
        cpu.append(w["cpu_ms"])
        print(f"  {kind:9s} raw {raw:7.0f}/s   worker {w['rate']:7.0f}/s   "
              f"ratio {w['rate'] / raw:4.2f}   worker CPU {w['cpu_ms']:.2f} ms/notice   "
              f"RSS peak {w['rss_mb']:.0f} MB", flush=True)
    return {"raw": statistics.median(raws), "worker": statistics.median(workers),
            "ratio": statistics.median(ratios), "rss_mb": max(rss),
            "cpu_ms": statistics.median(cpu)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--sink", choices=["aiosmtpd", "smtp-sink", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    kinds = ["aiosmtpd", "smtp-sink"] if a.sink == "both" else [a.sink]
    results = {k: measure(k, a.n, a.repeat) for k in kinds}
    print(f"\nthroughput, N={a.n}, default worker settings, median of {a.repeat}")
    print("| sink | raw mails/s | worker mails/s | ratio | target | worker CPU/notice | worker peak RSS |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    ok = True
    for k, r in results.items():
        ok &= r["ratio"] >= TARGET[k]
        print(f"| {k} | {r['raw']:.0f} | {r['worker']:.0f} | {r['ratio']:.2f} | "
              f"≥ {TARGET[k]} {'ok' if r['ratio'] >= TARGET[k] else 'MISSED'} | "
              f"{r['cpu_ms']:.2f} ms | {r['rss_mb']:.0f} MB |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
