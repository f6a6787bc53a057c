"""CPU per operation of the worker's building blocks, with and without hiredis and uvloop.

The whole-worker runs of ``throughput.py`` move ±30 % from minute to minute on this
shared 2-core machine, too much to see a 10 % change. Here each variant runs in the
same process in short alternating rounds and is timed by ``time.process_time`` (CPU,
not wall clock), so drift hits every variant alike:

- ``ack``: one EVALSHA round trip on the synchronous client, as dramatiq's consumer
  does to fetch and to acknowledge each message, with redis-py's pure-Python reply
  parser and with hiredis;
- ``notice``: the worker's own path for one hold (claim + contact lookup, decide,
  render, SMTP into Postfix's smtp-sink, record), 8 at a time, under asyncio's event
  loop and under uvloop, each with both parsers.

    .venv/bin/python bench/components.py [--rounds 7] [--n 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
import uvloop  # noqa: E402
from redis._parsers import (_AsyncHiredisParser, _AsyncRESP3Parser,  # noqa: E402
                            _HiredisParser, _RESP3Parser)

from common import (REDIS_URL, activate_patrons, hold_event, key_space,  # noqa: E402
                    make_sink, settings_for)

ACK_LUA = "redis.call('HDEL', KEYS[1], ARGV[1]); return redis.call('ZREM', KEYS[2], ARGV[1])"


def cpu_per_op(fn: Callable[[], int]) -> float:
    t0 = time.process_time()
    n = fn()
    return (time.process_time() - t0) / n * 1e6


def ack_round(parser: type, n: int) -> float:
    c = redis.Redis.from_url(REDIS_URL, parser_class=parser)
    script = c.register_script(ACK_LUA)
    script(keys=["bench:none:h", "bench:none:z"], args=["x"])  # load it

    def go() -> int:
        for i in range(n):
            script(keys=["bench:none:h", "bench:none:z"], args=[str(i)])
        return n
    try:
        return cpu_per_op(go)
    finally:
        c.close()


def notice_round(space: Any, sink: Any, loop: str, parser: type, first: int, n: int) -> float:
    from worker.ils.events import parse_event
    from worker.app.holds import Outcome, notify_hold_ready
    from worker.store.keys import Keys
    from worker.runtime import Runtime
    from worker.mail.compose import Composer
    from worker.store.core import Store
    from worker.mail.transport import make_transport

    s = settings_for(space, OMITAMA_NOTIFY_MAIL__TRANSPORT="smtp",
                     OMITAMA_NOTIFY_SMTP__PORT=str(sink.port))
    events = [parse_event(hold_event(i, space.run), set(s.branches))
              for i in range(first, first + n)]

    async def go() -> float:
        client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True, parser_class=parser)
        rt = Runtime(s, Store(client, Keys(s.redis.key_prefix), REDIS_URL), Composer(s),
                     make_transport(s))
        await notify_hold_ready(rt, events[0])  # connections up, scripts loaded
        sem = asyncio.Semaphore(8)

        async def one(ev: Any) -> None:
            async with sem:
                r = await notify_hold_ready(rt, ev)
                assert r.outcome is Outcome.SENT, r
        t0 = time.process_time()
        await asyncio.gather(*(one(ev) for ev in events[1:]))
        dt = time.process_time() - t0
        await rt.close()
        return dt / (n - 1) * 1e6

    if loop == "uvloop":
        return uvloop.run(go())
    return asyncio.run(go())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--n", type=int, default=400, help="notices per variant and round")
    a = ap.parse_args()
    parsers = {"python": (_RESP3Parser, _AsyncRESP3Parser),
               "hiredis": (_HiredisParser, _AsyncHiredisParser)}
    acks: dict[str, list[float]] = {k: [] for k in parsers}
    notices: dict[str, list[float]] = {f"{lp}+{p}": [] for lp in ("asyncio", "uvloop")
                                       for p in parsers}
    with key_space() as space:
        total = a.rounds * len(notices) * a.n
        activate_patrons(space, total)
        sink = make_sink("smtp-sink")
        try:
            first = 0
            for r in range(a.rounds):
                for name, (sync_p, _) in parsers.items():
                    acks[name].append(ack_round(sync_p, 5 * a.n))
                for name in notices:
                    lp, p = name.split("+")
                    notices[name].append(notice_round(space, sink, lp, parsers[p][1], first, a.n))
                    first += a.n
                print(f"round {r + 1}: " + "  ".join(
                    f"{k} {v[-1]:.0f}" for k, v in (acks | notices).items()), flush=True)
        finally:
            sink.stop()
    print(f"\nCPU µs per operation, median of {a.rounds} alternating rounds (this process only)")
    print("| operation | variant | µs | vs first |")
    print("|---|---|---:|---:|")
    for op, table in (("EVALSHA round trip (sync)", acks), ("one notice, 8 at once", notices)):
        base = statistics.median(next(iter(table.values())))
        for k, v in table.items():
            m = statistics.median(v)
            print(f"| {op} | {k} | {m:.0f} | {m / base - 1:+.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
