"""Scaling: worker rate against processes × threads (into Postfix's smtp-sink), and the
Redis memory per patron, per hold and per audit entry, projected for ten years.

    .venv/bin/python bench/scaling.py [--n 3000] [--configs 1x1,1x4,1x8,1x16,2x8]

Redis's own CPU per notice (``INFO cpu``, the server's user + system time over the run)
says how many notices a second one Redis could serve at most, whatever the number of
worker processes or hosts (docs/operations.md, "More worker hosts"). It counts every
client of the server: run it on a Redis of its own (``BENCH_REDIS_URL``).

Memory is ``MEMORY USAGE key SAMPLES 0`` of the keys the real worker wrote in the run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (REDIS_URL, activate_patrons, key_space, make_sink,  # noqa: E402
                    worker_rate)

# assumptions for the projection (say them in bench/README.md)
PATRONS = 30_000          # registered patrons, all with a contact record
HOLDS_PER_YEAR = 150_000  # hold_ready events a year
LIVE_DAYS = 7 + 30        # a hold key lives to pickup_by (≈ 7 days) + [retention] hold_days (30)
AUDIT_PER_PATRON_YEAR = 2 # registration, approval, change, suspension … per patron a year
PHONED_SHARE = 0.5        # holds that end on the call list (kept in `called` once phoned)
YEARS = 10


def usage(client, keys: list[bytes]) -> float:
    p = client.pipeline(transaction=False)
    for k in keys:
        p.memory_usage(k, samples=0)
    sizes = [s for s in p.execute() if s]
    return statistics.mean(sizes) if sizes else 0.0


def memory_figures(space, n: int) -> dict[str, float]:
    from worker.store.core import Store

    c = space.client()
    holds = list(c.scan_iter(f"{space.prefix}hold:*", count=5000))
    notices = list(c.scan_iter(f"{space.prefix}notice:*", count=5000))
    patrons = list(c.scan_iter(f"{space.prefix}patron:*", count=5000))
    sent = list(c.scan_iter(f"{space.prefix}sent:*", count=5000))
    audits = list(c.scan_iter(f"{space.prefix}audit:*", count=5000))
    per_hold = usage(c, holds) + usage(c, notices)
    per_patron = usage(c, patrons) + usage(c, sent)
    # the marginal cost of one audit entry: a list grown by 200 real entries
    card = audits[0].decode().rsplit(":", 1)[1]
    before = c.memory_usage(audits[0], samples=0)

    async def grow() -> None:
        store = Store.connect(REDIS_URL, space.prefix)
        for i in range(200):
            await store.audit(card, {"what": "state → active", "staff": "S01",
                                     "why": "phoned the patron, code checked", "branch": "ogawa"})
        await store.close()
    asyncio.run(grow())
    per_audit = (c.memory_usage(audits[0], samples=0) - before) / 200
    c.close()
    return {"hold": per_hold, "patron": per_patron, "audit": per_audit}


def redis_cpu_s(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--configs", default="1x1,1x4,1x8,1x16,2x8")
    a = ap.parse_args()
    rows = []
    mem: dict[str, float] = {}
    for cfg in a.configs.split(","):
        p, t = (int(x) for x in cfg.split("x"))
        with key_space() as space:
            activate_patrons(space, a.n)
            sink = make_sink("smtp-sink")
            client = space.client()
            cpu0 = redis_cpu_s(client)
            try:
                r = worker_rate(space, sink, a.n, processes=p, threads=t)
            finally:
                sink.stop()
            redis_ms = (redis_cpu_s(client) - cpu0) * 1000 / a.n
            client.close()
            if not mem:
                mem = memory_figures(space, a.n)
        rows.append((p, t, r["rate"], redis_ms))
        print(f"  {p} process(es) × {t:2d} threads: {r['rate']:6.0f} mails/s, "
              f"Redis {redis_ms:.3f} ms CPU per notice", flush=True)
    print(f"\nscaling into smtp-sink, N={a.n}")
    print("| processes × threads | mails/s | Redis CPU per notice | one Redis core's ceiling |")
    print("|---|---:|---:|---:|")
    for p, t, rate, redis_ms in rows:
        print(f"| {p} × {t} | {rate:.0f} | {redis_ms:.3f} ms | {1000 / redis_ms:,.0f} notices/s |")
    live_holds = HOLDS_PER_YEAR * LIVE_DAYS / 365
    audit_entries = PATRONS * AUDIT_PER_PATRON_YEAR * YEARS
    called = HOLDS_PER_YEAR * PHONED_SHARE * YEARS
    total = (PATRONS * mem["patron"] + live_holds * mem["hold"] + audit_entries * mem["audit"]
             + called * mem["audit"] * 1.2)
    print("\nRedis bytes (MEMORY USAGE, as the worker wrote them)")
    print("| item | bytes | 10-year count | MB |")
    print("|---|---:|---:|---:|")
    print(f"| patron (contact hash + last-sent list) | {mem['patron']:.0f} | {PATRONS:,} | {PATRONS * mem['patron'] / 1e6:.1f} |")
    print(f"| hold (hash + notice key; expires {LIVE_DAYS} d after ready) | {mem['hold']:.0f} | {live_holds:,.0f} live | {live_holds * mem['hold'] / 1e6:.1f} |")
    print(f"| audit entry (kept) | {mem['audit']:.0f} | {audit_entries:,} | {audit_entries * mem['audit'] / 1e6:.1f} |")
    print(f"| `called` record (kept; ≈ 1.2 × an audit entry) | {mem['audit'] * 1.2:.0f} | {called:,.0f} | {called * mem['audit'] * 1.2 / 1e6:.1f} |")
    print(f"| total after {YEARS} years | | | {total / 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
