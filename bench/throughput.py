"""Throughput as a ratio of the raw limit, measured back to back in one run.

raw:    N notices built by the worker's composer and flattened to bytes beforehand,
        sent over one reused aiosmtplib connection into the sink;
worker: N hold_ready events (the HSET+RPUSH producer recipe of docs/ils-integration.md) through the real
        ``omitama-notify worker`` — Redis broker, contact lookup, idempotency claim,
        rendering, pooled SMTP — into the same sink, timed from the first enqueue to the
        sink's last 250.

    .venv/bin/python bench/throughput.py [--n 3000] [--sink aiosmtpd|smtp-sink|both] [--repeat 3]

Targets with the default worker settings: ratio ≥ 0.8 into aiosmtpd, ≥ 0.5 into smtp-sink.
These run with ``[digest] gather_s = 0`` (one mail per hold). ``--digest [S]`` measures
digests instead: N holds, ``--per-card`` (3) per card at one branch, all enqueued at once,
window S seconds (default: the shipped default); it reports holds/s and mails/s counted
from the window's end (the wait itself is the window, not work) and the CPU per hold
(less what the idle worker uses over the same time, measured just before).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (ROOT, Worker, activate_patrons, enqueue_raw, hold_event,  # noqa: E402
                    key_space, make_sink, prebuilt, queue_drained, raw_rate, worker_rate)

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


def digest_rate(kind: str, n: int, per_card: int, window: float,
                tree: Path = ROOT) -> dict[str, float]:
    """n holds, per_card of them per card at one branch, through the worker with a digest
    window: holds/s and mails/s from the window's end to the last 250, CPU per hold."""
    import time

    with key_space() as space:
        cards = -(-n // per_card)
        activate_patrons(space, cards)
        events = []
        for i in range(n):
            ev = hold_event(i, space.run)
            c = i // per_card
            ev.update(card_number=f"21{c:08d}", pickup_branch=("ogawa", "tamari", "minori")[c % 3])
            events.append(ev)
        sink = make_sink(kind)
        client = space.client()
        w = Worker(space, sink.port, extra_env={"OMITAMA_NOTIFY_DIGEST__GATHER_S": str(window)},
                   tree=tree)
        try:
            sink.reset()
            # the worker's own CPU while idle (polling, heartbeats, the metrics thread):
            # the digest run waits through the window and then the windows' messages, so
            # this is taken off to leave what the holds cost
            idle0, i0 = w.cpu_s(), time.perf_counter()
            time.sleep(3.0)
            idle_rate = (w.cpu_s() - idle0) / (time.perf_counter() - i0)
            cpu0 = w.cpu_s()
            t0 = time.perf_counter()
            enqueue_raw(client, space.namespace, events)
            deadline = time.monotonic() + window + 600
            while sink.count() < cards and time.monotonic() < deadline:
                time.sleep(0.005)
            dt = time.perf_counter() - t0
            while not queue_drained(client, space.namespace) and time.monotonic() < deadline:
                time.sleep(0.05)
            cpu = w.cpu_s() - cpu0
            idle = idle_rate * (time.perf_counter() - t0)
            mails = sink.count()
        finally:
            w.stop()
            sink.stop()
            client.close()
    work = max(dt - window, 1e-3)
    return {"holds_s": n / work, "mails_s": mails / work, "mails": mails, "cards": cards,
            "seconds": dt, "cpu_ms": max(cpu - idle, 0.0) * 1000 / n,
            "cpu_gross_ms": cpu * 1000 / n}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--sink", choices=["aiosmtpd", "smtp-sink", "both"], default="both")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--digest", type=float, nargs="?", const=-1.0, default=None,
                    metavar="S", help="measure digests with a window of S s (default: shipped)")
    ap.add_argument("--per-card", type=int, default=3)
    a = ap.parse_args()
    if a.digest is not None:
        from worker.settings import DigestSettings
        window = a.digest if a.digest >= 0 else DigestSettings().gather_s
        kind = "aiosmtpd" if a.sink == "both" else a.sink
        r = digest_rate(kind, a.n, a.per_card, window)
        print(f"digest, N={a.n} holds, {a.per_card} per card, window {window:g} s, {kind}: "
              f"{r['mails']} mails for {r['cards']} cards in {r['seconds']:.1f} s; after the "
              f"window {r['holds_s']:.0f} holds/s, {r['mails_s']:.0f} mails/s; worker CPU "
              f"{r['cpu_ms']:.2f} ms/hold ({r['cpu_gross_ms']:.2f} with the idle worker's)")
        return 0 if r["mails"] == r["cards"] else 1
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
