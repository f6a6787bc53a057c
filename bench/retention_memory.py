"""Redis bytes of a hold before and after it closes, and of the kept lists' entries, with
the ``[retention]`` defaults: the ten-year projection of bench/README.md ("Redis memory").

    .venv/bin/python bench/retention_memory.py [--n 200]

Keys are written by the store's own steps (claim_hold.lua, finish_hold.lua, close_hold.lua,
mark_called.lua, the audit append) under a key prefix of their own, deleted at the end;
bytes are ``MEMORY USAGE key SAMPLES 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.settings import RetentionSettings  # noqa: E402
from worker.store.core import Store  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
PATRONS = 30_000           # registered patrons, all with a contact record
PATRON_BYTES = 464         # contact hash + last-sent list (bench/scaling.py)
HOLDS_PER_YEAR = 150_000   # hold_ready events a year
PICKUP_DAYS = 7            # a hold is open (title kept) at most its pickup window
AUDIT_PER_PATRON_YEAR = 2
PHONED_SHARE = 0.5         # holds that end on the call list, then in `called`
FAILURES_PER_YEAR = 3_000  # delivery failures and bounce mails, each a year (generous)


def event(hold_id: str, card: str) -> str:
    return json.dumps({
        "event_id": f"ev-{hold_id}", "type": "hold_ready", "hold_id": hold_id,
        "card_number": card, "item": {"title": "吾輩は猫である(新潮文庫)", "author": "夏目漱石",
                                      "call_number": "913.6/ナ", "material": "book"},
        "pickup_branch": "ogawa", "ready_at": "2026-11-29T10:00:00+09:00",
        "pickup_by": "2026-12-06", "contact": "email", "patron_name": "山田 太郎"},
        ensure_ascii=False)


async def measure(n: int) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    st = Store.connect(REDIS_URL, prefix)
    r = st.r

    async def mean_usage(keys: list[str]) -> float:
        return statistics.mean([await r.memory_usage(k, samples=0) or 0 for k in keys])
    try:
        for i in range(n):
            h, card = f"H{i:07d}", f"C{i:07d}"
            c = await st.claim_hold(h, token=uuid.uuid4().hex, lease_ms=120_000, ttl_s=86400 * 37,
                                    fields={"event": event(h, card), "card_number": card,
                                            "pickup_branch": "ogawa", "pickup_by": "2026-12-06"})
            await st.finish_hold(h, "sent", c.token, card=card, fields={
                "message_id": f"<hold.{c.notice}@city.omitama.ibaraki.jp>",
                "sent_ms": 1764400000000, "to": "t***@docomo.ne.jp",
                "relay_reply": "250 2.0.0 Ok: queued as 4dKx1234"})
        holds = [st.k.hold(f"H{i:07d}") for i in range(n)]
        notices = [k async for k in r.scan_iter(prefix + "notice:*")]
        open_hold = await mean_usage(holds) + await mean_usage(notices)
        for i in range(n):
            await st.close_hold(f"H{i:07d}", "picked_up", 86400)
        closed_hold = await mean_usage(holds) + await mean_usage(notices)
        # one kept entry of a list: the growth of the list by n real entries
        audit_entry = {"kind": "approved", "staff": "S01", "why": "", "branch": "ogawa",
                       "what": "approved after the patron's call (code checked)"}
        audit = await _growth(r, st.k.audit("C0"), n, lambda i: st.audit("C0", audit_entry))
        called = await _growth(r, st.k.called, n, lambda i: r.rpush(st.k.called, json.dumps(
            {"at": "2026-11-29T10:00:00+09:00", "hold_id": f"H{i:07d}", "staff": "S01",
             "note": ""})))
        return {"open_hold": open_hold, "closed_hold": closed_hold, "audit": audit,
                "called": called}
    finally:
        keys = [k async for k in r.scan_iter(prefix + "*")]
        for i in range(0, len(keys), 500):
            await r.delete(*keys[i:i + 500])
        await st.close()


async def _growth(r, key: str, n: int, write) -> float:
    await write(-1)  # the list exists: only the entries' own bytes are counted
    before = await r.memory_usage(key, samples=0)
    for i in range(n):
        await write(i)
    return (await r.memory_usage(key, samples=0) - before) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=200)
    m = asyncio.run(measure(ap.parse_args().n))
    ret = RetentionSettings()
    open_holds = HOLDS_PER_YEAR * PICKUP_DAYS / 365
    closed_holds = HOLDS_PER_YEAR * ret.hold_days / 365
    audit = PATRONS * AUDIT_PER_PATRON_YEAR * ret.audit_days / 365
    called = HOLDS_PER_YEAR * PHONED_SHARE * ret.called_days / 365
    lists = FAILURES_PER_YEAR * (ret.failures_days + ret.bounces_days) / 365
    rows = [("patron (contact hash + last-sent list)", PATRON_BYTES, PATRONS),
            (f"open hold (hash with event + notice key; ≤ {PICKUP_DAYS} d)", m["open_hold"], open_holds),
            (f"closed hold (title and name dropped; {ret.hold_days} d)", m["closed_hold"], closed_holds),
            (f"audit entry ({ret.audit_days} d)", m["audit"], audit),
            (f"`called` record ({ret.called_days} d)", m["called"], called),
            (f"failure / bounce-log entry ({ret.failures_days} d; ≈ 2 × `called`)",
             2 * m["called"], lists)]
    print("| item | bytes | kept at any time | MB |")
    print("|---|---:|---:|---:|")
    total = 0.0
    for name, size, count in rows:
        total += size * count
        print(f"| {name} | {size:.0f} | {count:,.0f} | {size * count / 1e6:.1f} |")
    print(f"| total, the same after 2 or 10 years | | | {total / 1e6:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
