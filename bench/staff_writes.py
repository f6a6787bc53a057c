"""What confirming a staff action by a replica costs (issue 19 #2), and what
``min-replicas-to-write`` would do instead.

A private primary + replica on loopback (tests/redis_lab.py, Debian's redis-server), the
store as production builds it (``Store.from_settings``). Timed: one approval without the
code (``registration.approve``: WATCH, read, MULTI/EXEC — and with ``[staff_writes]
replicas = 1`` the mark and the WAIT), the pending card made beforehand, untimed.

    .venv/bin/python bench/staff_writes.py [--n 50] [--stalled-n 8] [--timeout-ms 500]

Rows: no WAIT (replicas = 0, the default); WAIT 1 with the replica healthy; WAIT 1 with
the replica stopped (SIGSTOP: the timeout, then "maybe not kept"); the primary's
``min-replicas-to-write 1`` (``min-replicas-max-lag``, 10 s) with the replica healthy, and
with it stopped: how long writes were still accepted (none of them on the replica), and
that then every write is refused — the worker's too.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redis.exceptions import ResponseError  # noqa: E402

from tests.helpers import set_contact, variant  # noqa: E402
from tests.redis_lab import Lab  # noqa: E402
from worker.app import registration  # noqa: E402
from worker.contact import ContactState  # noqa: E402
from worker.errors import NotConfirmed  # noqa: E402
from worker.settings import load_settings  # noqa: E402
from worker.store.core import Store  # noqa: E402


Switch = Callable[[bool], None]


def _nothing(on: bool) -> None:
    pass


async def approvals(s: Any, n: int, lab: Lab, stalled: bool = False,
                    switch: Switch = _nothing) -> tuple[list[float], int]:
    """Time ``n`` approvals (ms each), ``switch(True)`` after the set-up and
    ``switch(False)`` at the end; how many were not confirmed."""
    store = Store.from_settings(s)
    cards = [f"B{uuid.uuid4().hex[:8]}" for _ in range(n)]
    try:
        for card in cards:
            await set_contact(store, card, ContactState.PENDING)
        lab.wait_synced()
        switch(True)
        if stalled:
            lab.replicas[0].pause()
        times, unconfirmed = [], 0
        for card in cards:
            start = time.perf_counter()
            try:
                await registration.approve(store, s, card, "S01", reason="bench",
                                           shown=f"setup-{card}")
            except NotConfirmed:
                unconfirmed += 1
            times.append((time.perf_counter() - start) * 1000)
        return times, unconfirmed
    finally:
        switch(False)
        lab.replicas[0].resume()
        await store.close()


async def min_replicas_window(s: Any, lab: Lab, switch: Switch,
                              n: int) -> tuple[float, int, str]:
    """With min-replicas-to-write on and the replica stopped, an approval every 0.25 s:
    seconds writes were still accepted, approvals accepted meanwhile, and what the first
    refusal said."""
    store = Store.from_settings(s)
    try:
        cards = [f"M{uuid.uuid4().hex[:8]}" for _ in range(n)]
        for card in cards:
            await set_contact(store, card, ContactState.PENDING)
        lab.wait_synced()
        switch(True)
        lab.replicas[0].pause()
        start, accepted = time.monotonic(), 0
        for card in cards:
            try:
                await registration.approve(store, s, card, "S01", reason="bench",
                                           shown=f"setup-{card}")
                accepted += 1
            except ResponseError as e:
                # the worker's own writes are refused as well from now on
                try:
                    await store.audit("bench-worker-write", {"kind": "bench"})
                    worker = "a worker write still accepted"
                except ResponseError:
                    worker = "every write refused, the worker's too"
                said = "NOREPLICAS" if "NOREPLICAS" in str(e) else str(e)[:60]
                return time.monotonic() - start, accepted, f"{said}: {worker}"
            await asyncio.sleep(0.25)
        return time.monotonic() - start, accepted, "never refused"
    finally:
        switch(False)
        lab.replicas[0].resume()
        await store.close()


def row(name: str, times: list[float], note: str = "") -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (f"| {name} | {len(times)} | {statistics.median(times):.2f} | {p90:.2f} | "
            f"{ordered[-1]:.2f} | {note} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="approvals per healthy row")
    ap.add_argument("--rounds", type=int, default=5, help="the healthy rows alternate")
    ap.add_argument("--stalled-n", type=int, default=8)
    ap.add_argument("--timeout-ms", type=int, default=500)
    ap.add_argument("--max-lag", type=int, default=10, help="min-replicas-max-lag (s)")
    args = ap.parse_args()
    base = load_settings()
    prefix = f"bench{uuid.uuid4().hex[:6]}:"
    with tempfile.TemporaryDirectory(prefix="staffwrites-") as tmp, \
            Lab.start(Path(tmp) / "lab", sentinels=0) as lab:
        def on(replicas: int) -> Any:
            return variant(base, redis={"url": lab.primary.url, "start_private": False,
                                        "key_prefix": prefix},
                           staff_writes={"replicas": replicas, "timeout_ms": args.timeout_ms})
        primary = lab.primary.client()

        def min_replicas(on_: bool) -> None:
            primary.config_set("min-replicas-max-lag", args.max_lag)
            primary.config_set("min-replicas-to-write", 1 if on_ else 0)
        asyncio.run(approvals(on(1), 5, lab))  # warm up: the server, the scripts
        got: dict[str, list[float]] = {"none": [], "wait": [], "min": []}
        unconfirmed = 0
        per = max(1, args.n // args.rounds)
        for _ in range(args.rounds):  # alternated: the machine's load falls on each alike
            got["none"] += asyncio.run(approvals(on(0), per, lab))[0]
            t, u = asyncio.run(approvals(on(1), per, lab))
            got["wait"] += t
            unconfirmed += u
            got["min"] += asyncio.run(approvals(on(0), per, lab, switch=min_replicas))[0]
        stalled, u = asyncio.run(approvals(on(1), args.stalled_n, lab, stalled=True))
        took, accepted, said = asyncio.run(min_replicas_window(
            on(0), lab, min_replicas, int(args.max_lag * 4 + 20)))
    print("| approval | n | median ms | p90 ms | max ms | |\n|---|---|---|---|---|---|")
    print(row("no WAIT (`replicas = 0`, the default)", got["none"]))
    print(row("WAIT 1, replica healthy", got["wait"], f"{unconfirmed} not confirmed"))
    print(row(f"WAIT 1, replica stopped (`timeout_ms` {args.timeout_ms})", stalled,
              f"{u} of {len(stalled)} not confirmed: staff told to repeat"))
    print(row("min-replicas-to-write 1, replica healthy", got["min"],
              "this write itself not confirmed"))
    print(f"| min-replicas-to-write 1 (max-lag {args.max_lag} s), replica stopped | {accepted} "
          "| - | - | - | "
          f"accepted for {took:.1f} s though the replica had none, then {said} |")


if __name__ == "__main__":
    main()
