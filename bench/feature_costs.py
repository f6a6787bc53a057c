"""What each feature of the notice path costs per notice, each measured apart.

The whole-worker figures (throughput.py, compare.py) move ±30 % on the shared machine;
a feature that costs 2 % is not seen there. Here:

- Redis side, on a private redis-server (nobody else's commands in its statistics): the
  server's own µs per call (``INFO commandstats``) of the claim and finish scripts as
  467e91f had them and as they are now (fencing token and lease, the inflight index,
  the outcome stream the wrapper appends), the same holds and arguments, batches
  alternating; and dramatiq's per-message acknowledgement against the fetch that now
  carries it.
- Worker side, CPU µs per call (``time.process_time``, best of rounds) of the steps a
  feature added or moved: the envelope checks of the decoder (signed internal actors,
  options), the refusal key (computed only on a refusal since d1eaf21), the retention
  fields (the stored event, its TTL), the masked address and a DEBUG line (logging).

    .venv/bin/python bench/feature_costs.py [--n 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import redis  # noqa: E402

from common import ROOT, free_port, hold_event  # noqa: E402

OLD = "467e91f"


def old_lua(name: str) -> str:
    return subprocess.run(["git", "show", f"{OLD}:worker/lua/{name}.lua"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout


def private_redis() -> tuple[subprocess.Popen[bytes], redis.Redis, Path]:
    exe = shutil.which("redis-server")
    if exe is None:
        from worker.store.devredis import redis_server_binary
        exe = redis_server_binary()
    d = Path(tempfile.mkdtemp(prefix="omitama-feature-costs-"))
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    r = redis.Redis(port=port, decode_responses=True)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, r, d


def server_us(r: redis.Redis, batch: Callable[[], int]) -> float:
    """The server's µs per EVALSHA over one batch (its own clock, not ours)."""
    r.config_resetstat()
    n = batch()
    stats = r.info("commandstats").get("cmdstat_evalsha", {})
    return float(stats.get("usec", 0)) / max(n, 1)


def redis_side(n: int, rounds: int) -> dict[str, list[float]]:
    from worker.store.keys import Keys
    from worker.store.outcomes import outcome_args, with_outcomes
    from worker.store.scripts import lua

    proc, r, d = private_redis()
    try:
        k = Keys("fc:")
        scripts = {"claim 467e91f": r.register_script(old_lua("claim_hold")),
                   "claim now": r.register_script(lua("claim_hold")),
                   "finish 467e91f": r.register_script(old_lua("finish_hold")),
                   "finish now, no outcome": r.register_script(lua("finish_hold")),
                   "finish now (with the outcome stream)":
                       r.register_script(with_outcomes("finish_hold"))}
        ev = json.dumps(hold_event(0, "fc"), ensure_ascii=False)
        out: dict[str, list[float]] = {name: [] for name in scripts}

        def claims(name: str, ids: list[str]) -> Callable[[], int]:
            # today's claim takes the notice token after the ttl (the old one had none)
            derived = name != "claim 467e91f"

            def go() -> int:
                for h in ids:
                    scripts[name](keys=[k.hold(h), k.notice(h), k.inflight],
                                  args=[int(time.time() * 1000), 60000, h, h, 86400 * 40,
                                        *([h[:24]] if derived else []), "event", ev,
                                        "card_number", "2100000001", "pickup_branch", "ogawa",
                                        "pickup_by", "2026-12-20"])
                return len(ids)
            return go

        def finishes(name: str, ids: list[str]) -> Callable[[], int]:
            wrapped = "outcome" in name
            def go() -> int:
                for h in ids:
                    keys = [k.hold(h), k.calls, k.calls_due, k.sent("2100000001"),
                            k.patron("2100000001"), k.inflight]
                    args: list[Any] = ["sent", h, h, "", 0, "message_id", f"<hold.{h}@x>",
                                       "sent_ms", int(time.time() * 1000), "to", "p***@example.jp",
                                       "relay_reply", "250 2.0.0 Ok: queued as 4ABC"]
                    if wrapped:
                        keys.append(k.outcomes)
                        args += outcome_args(100_000, "2026-12-06T21:00:00+09:00")
                    scripts[name](keys=keys, args=args)
                return len(ids)
            return go

        for _ in range(rounds):
            for claim_name, finish_names in (("claim 467e91f", ["finish 467e91f"]),
                                             ("claim now", ["finish now, no outcome",
                                                            "finish now (with the outcome stream)"])):
                for fin in finish_names:
                    ids = [uuid.uuid4().hex for _ in range(n)]
                    out[claim_name].append(server_us(r, claims(claim_name, ids)))
                    out[fin].append(server_us(r, finishes(fin, ids)))
        # dramatiq's ack (its dispatch script) against the ids the fetch now takes
        from dramatiq.brokers.redis import _scripts
        dispatch = r.register_script(_scripts["dispatch"].decode())
        fetch = r.register_script(lua("fetch"))
        ns = "fcq"
        out["dramatiq's ack, a round trip a message"] = []
        out["fetch of 8, no acks"] = []
        out["fetch of 8 carrying 8 acks"] = []
        for _ in range(rounds):
            for carry in (False, True):
                ids = [uuid.uuid4().hex for _ in range(n)]
                p = r.pipeline(transaction=False)
                for i in ids:
                    p.hset(f"{ns}:q.msgs", i, ev)
                    p.rpush(f"{ns}:q", i)
                p.execute()
                keys = [f"{ns}:__heartbeats__", f"{ns}:q", f"{ns}:q.msgs", f"{ns}:__acks__.w.q"]
                pending: list[str] = []

                def fetches() -> int:
                    calls = 0
                    while True:
                        got = fetch(keys=keys, args=[int(time.time() * 1000), "w", 8,
                                                     *(pending if carry else [])])
                        calls += 1
                        pending[:] = got[::2]
                        if not got:
                            return calls
                us = server_us(r, fetches)
                name = "fetch of 8 carrying 8 acks" if carry else "fetch of 8, no acks"
                out[name].append(us)
                if not carry:
                    left = sorted(r.smembers(keys[3]))

                    def acks() -> int:
                        for i in left:
                            dispatch(keys=[ns], args=["ack", int(time.time() * 1000), "q", "w",
                                                      60000, 86400000, 0, 0, i])
                        return len(left)
                    out["dramatiq's ack, a round trip a message"].append(server_us(r, acks))
        return out
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)


def cpu_us(fn: Callable[[], Any], number: int, rounds: int) -> float:
    t = timeit.Timer(fn, timer=time.process_time)
    return min(t.repeat(repeat=rounds, number=number)) / number * 1e6


def worker_side(n: int, rounds: int) -> dict[str, float]:
    import logging

    from worker.app.refusals import payload_fingerprint
    from worker.holds.retention import retention_s
    from worker.ils.events import parse_event
    from worker.jdate import now_tokyo
    from worker.mail.compose import new_token
    from worker.masking import mask_address
    from worker.queue.envelope import EnvelopeEncoder
    from worker.queue.internal import drop_options, internal_problem
    from worker.settings import load_settings

    s = load_settings()
    raw = hold_event(1, "fc")
    ev = parse_event(raw, set(s.branches))
    msg = {"queue_name": "notifications", "actor_name": "hold_ready", "args": [raw],
           "kwargs": {}, "options": {"redis_message_id": "r1"}, "message_id": "m1",
           "message_timestamp": 1796593423296}
    data = json.dumps(msg, ensure_ascii=False).encode()
    enc = EnvelopeEncoder(lambda: {"hold_ready", "hold_cancelled", "hold_picked_up",
                                   "address_registered", "address_removed",
                                   "omitama_malformed", "omitama_gave_up"})
    log = logging.getLogger("fc")
    log.setLevel(logging.INFO)
    now = now_tokyo()
    return {
        "decoder: whole envelope check (json, fields, options, id)": cpu_us(
            lambda: enc.decode(data), n, rounds),
        "decoder: the internal-actor signature check, ordinary event": cpu_us(
            lambda: internal_problem(msg, None), n, rounds),
        "decoder: the options check": cpu_us(
            lambda: drop_options({"options": {"redis_message_id": "r1"}}), n, rounds),
        "refusal key (hash of the event; only on a refusal since d1eaf21)": cpu_us(
            lambda: payload_fingerprint(json.dumps([raw], sort_keys=True, default=repr)),
            n, rounds),
        "retention: the stored event (model_dump_json)": cpu_us(
            lambda: ev.model_dump_json(), n, rounds),
        "retention: the hold's TTL (retention_s)": cpu_us(
            lambda: retention_s(ev.pickup_by, now, 30), n, rounds),
        "fencing: a fresh token per claim": cpu_us(new_token, n, rounds),
        "logging: the masked address for the DEBUG line (computed at INFO too)": cpu_us(
            lambda: mask_address("p1@example.jp"), n, rounds),
        "logging: a DEBUG call at INFO (args already built)": cpu_us(
            lambda: log.debug("hold %s: notice %s sent to %s", "H1", "<m>", "p***"), n, rounds),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    import statistics
    rs = redis_side(a.n, a.rounds)
    table(f"Redis server µs per call (private redis-server, median of {a.rounds} batches of {a.n})",
          "script", "µs per call", {k: statistics.median(v) for k, v in rs.items()})
    table(f"worker CPU µs per call (best of {a.rounds} × {a.n})", "step", "µs",
          worker_side(a.n, a.rounds))
    return 0


def table(title: str, what: str, unit: str, rows: dict[str, float]) -> None:
    print(f"\n{title}\n| {what} | {unit} |\n|---|---:|")
    for name, v in rows.items():
        print(f"| {name} | {v:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
