"""What it costs to find the broker id of messages that came without (or with a wrong)
``options.redis_message_id``, in a backlog of N such messages.

- ``scan`` (the worker until issue 14): for each message, HSCAN the queue's hash and
  hash every stored message until one matches — O(N) per message, O(N²) for the
  backlog. Timed on a sample of messages and extrapolated to the backlog.
- ``fetch`` (now): ``worker.queue.fetch.Broker.do_fetch`` returns each message with the id it
  is stored under; decoding sets it. Timed on the whole backlog, fetched and decoded
  in batches of 8 as a worker thread pair does.

    .venv/bin/python bench/recover_ids.py [--n 10000] [--sample 20]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from worker.queue.envelope import QUEUE, EnvelopeEncoder, raw_sha  # noqa: E402
from worker.queue.fetch import Broker  # noqa: E402

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")


def fill(r: redis.Redis, ns: str, n: int) -> None:
    p = r.pipeline(transaction=False)
    for i in range(n):
        rid = str(uuid.uuid4())
        event = {"event_id": f"e{i}", "type": "hold_ready", "hold_id": f"H{i}",
                 "card_number": "2100000002", "pickup_branch": "ogawa", "contact": "phone",
                 "item": {"title": "吾輩は猫である", "author": "夏目漱石", "material": "book"},
                 "ready_at": "2026-11-29T10:00:00+09:00", "pickup_by": "2026-12-05",
                 "patron_name": "山田 太郎"}
        p.hset(f"{ns}:{QUEUE}.msgs", rid, json.dumps(
            {"queue_name": QUEUE, "actor_name": "hold_ready", "args": [event], "kwargs": {},
             "options": {}, "message_id": str(uuid.uuid4()), "message_timestamp": 1},
            ensure_ascii=False))
        p.rpush(f"{ns}:{QUEUE}", rid)
        if i % 1000 == 999:
            p.execute()
    p.execute()


def scan_cost(r: redis.Redis, ns: str, sample: int) -> float:
    """Seconds per message, the old way (RecoverRedisId.before_process_message)."""
    wanted = [raw_sha(d) for d in r.hvals(f"{ns}:{QUEUE}.msgs")[-sample:]]
    t = time.perf_counter()
    for sha in wanted:
        for _rid, data in r.hscan_iter(f"{ns}:{QUEUE}.msgs"):
            if raw_sha(data) == sha:
                break
    return (time.perf_counter() - t) / sample


def fetch_cost(broker: Broker, n: int) -> float:
    """Seconds for the whole backlog, the new way."""
    enc = EnvelopeEncoder(lambda: {"hold_ready"})
    t = time.perf_counter()
    done = 0
    while done < n:
        for data in broker.do_fetch(QUEUE, 8):
            assert data is not None and enc.decode(data)["options"]["redis_message_id"]
            done += 1
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=20)
    a = ap.parse_args()
    ns = f"bench-ids-{uuid.uuid4().hex[:8]}"
    r = redis.Redis.from_url(REDIS_URL)
    broker = Broker(url=REDIS_URL, namespace=ns)
    try:
        fill(r, ns, a.n)
        per = scan_cost(r, ns, a.sample)
        new = fetch_cost(broker, a.n)
        print(f"backlog of {a.n} messages without redis_message_id")
        print(f"  scan  (before): {per * 1000:.1f} ms per message → "
              f"{per * a.n:.0f} s for the backlog (from {a.sample} sampled)")
        print(f"  fetch (now):    {new / a.n * 1e6:.0f} µs per message → {new:.2f} s for the "
              "backlog (fetch + decode, measured whole)")
    finally:
        for key in r.scan_iter(f"{ns}:*", count=1000):
            r.delete(key)
        broker.close()


if __name__ == "__main__":
    main()
