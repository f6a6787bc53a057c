"""What DKIM signing ([dkim], worker/mail/dkim.py) costs per mail: signing off and on in
the same run, alternated, so the machine's drift hits both alike.

compose: one hold notice rendered, MIME-built and (on) signed in this process, CPU per
         mail by ``time.process_time``, alternating rounds off / on;
worker:  N hold_ready events through the real ``omitama-notify worker`` into the sink,
         off / on alternately (``--repeat`` pairs), mails/s and the worker's CPU per notice.

    .venv/bin/python bench/signing.py [--bits 2048] [--rounds 7] [--n 2000] [--repeat 2]
                                   [--sink aiosmtpd|smtp-sink]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dataclasses import dataclass  # noqa: E402

from common import (Space, activate_patrons, hold_event, key_space, make_sink,  # noqa: E402
                    worker_rate)

from tests.helpers import variant  # noqa: E402
from worker.ils.events import HoldReady  # noqa: E402
from worker.mail.compose import Composer  # noqa: E402
from worker.mail.dkim import generate_key, write_private_key  # noqa: E402
from worker.settings import load_settings  # noqa: E402


@dataclass
class Again(Space):
    """The patrons of ``base`` (set up once: that is slow), the holds of a fresh run."""
    base: str = ""

    @property
    def prefix(self) -> str:
        return f"bench{self.base}:"

    @property
    def namespace(self) -> str:
        return f"bench{self.base}-dramatiq"


def dkim_env(key_file: Path) -> dict[str, str]:
    return {"OMITAMA_NOTIFY_DKIM__DOMAIN": "city.omitama.ibaraki.jp",
            "OMITAMA_NOTIFY_DKIM__SELECTOR": "bench", "OMITAMA_NOTIFY_DKIM__KEY_FILE": str(key_file)}


def compose_rounds(key_file: Path, rounds: int, n: int) -> tuple[list[float], list[float], int]:
    base = load_settings()
    off = Composer(base)
    on = Composer(variant(base, dkim={"domain": "city.omitama.ibaraki.jp", "selector": "bench",
                                      "key_file": str(key_file)}))
    ev = HoldReady.model_validate_json(json.dumps(hold_event(1, "bench")))
    us_off, us_on = [], []
    for _ in range(rounds):
        for composer, out in ((off, us_off), (on, us_on)):
            t0 = time.process_time()
            for i in range(n):
                composer.hold_ready(ev, "p1@example.jp", f"{i:024x}")
            out.append((time.process_time() - t0) / n * 1e6)
    grown = len(on.hold_ready(ev, "p1@example.jp", "0" * 24).data) - len(
        off.hold_ready(ev, "p1@example.jp", "0" * 24).data)
    return us_off, us_on, grown


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bits", type=int, default=2048)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--per-round", type=int, default=300)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--sink", default="aiosmtpd", choices=("aiosmtpd", "smtp-sink"))
    p.add_argument("--no-worker", action="store_true", help="only the in-process compose rounds")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        key_file = Path(tmp) / "bench.pem"
        write_private_key(key_file, generate_key(args.bits))
        us_off, us_on, grown = compose_rounds(key_file, args.rounds, args.per_round)
        print(f"compose, RSA {args.bits}: off {statistics.median(us_off):.0f} µs/mail "
              f"(rounds {min(us_off):.0f}–{max(us_off):.0f}), on {statistics.median(us_on):.0f} µs/mail "
              f"(rounds {min(us_on):.0f}–{max(us_on):.0f}); signing adds "
              f"{statistics.median(us_on) - statistics.median(us_off):.0f} µs and {grown} bytes a mail",
              flush=True)
        if args.no_worker:
            return 0
        results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
        with key_space() as space:
            activate_patrons(space, args.n)
            sink = make_sink(args.sink)
            try:
                for _ in range(args.repeat):
                    for mode in ("off", "on"):
                        w = worker_rate(Again(base=space.run), sink, args.n,
                                        extra_env=dkim_env(key_file) if mode == "on" else None)
                        if w["extra"] or w["errors"]:
                            print(f"  WARNING: {w['extra']} extra mails, errors: {w['errors'][:3]}")
                        results[mode].append(w)
                        print(f"  worker, signing {mode:3s}: {w['rate']:6.0f} mails/s, "
                              f"CPU {w['cpu_ms']:.2f} ms/notice", flush=True)
            finally:
                sink.stop()
        for mode in ("off", "on"):
            rows = results[mode]
            print(f"worker, signing {mode}: median {statistics.median(r['rate'] for r in rows):.0f} "
                  f"mails/s, CPU {statistics.median(r['cpu_ms'] for r in rows):.2f} ms/notice")
    return 0


if __name__ == "__main__":
    sys.exit(main())
