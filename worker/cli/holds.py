"""``omitama-notify holds missing [FILE|-] [--since DURATION] [--json]``: of the holds the
ILS announced (hold ids, one a line), those with no outcome — the ILS's reconciliation
pass (docs/ils-integration.md) re-announces the ``unknown`` ones."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import datetime, timedelta
from typing import IO, Any

from ..app.missing import Known, holds_missing
from ..errors import InputError
from ..ils.events import IDENT_PATTERN
from ..jdate import now_tokyo
from ..settings import Settings
from ..store.core import Store
from .common import moment, with_store

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``1d`` or a number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 15m, 2h, 1d, 90s)")
    return timedelta(seconds=float(m[1]) * _UNITS[m[2] or "s"])


def _announced_at(text: str) -> datetime | None:
    try:
        return moment(text)
    except argparse.ArgumentTypeError:
        return None


def read_lines(fh: IO[str], since: timedelta | None, err: IO[str]
               ) -> tuple[list[str], int, int]:
    """The hold ids to look at; how many lines were announced too recently (``since``)
    and how many were not a hold id (each named on ``err``). A line is a hold id, and
    optionally the moment the ILS announced it (ISO 8601; no offset: Tokyo time)."""
    ids: list[str] = []
    seen: set[str] = set()  # a reconciliation list can hold 100,000 ids: no list search each
    recent = bad = 0
    cutoff = now_tokyo() - since if since is not None else None
    try:
        for n, line in enumerate(fh, 1):
            if n == 1:  # a list saved by a spreadsheet starts with a byte-order mark
                line = line.removeprefix("\ufeff")
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            hold, at = parts[0], _announced_at(parts[1]) if len(parts) == 2 else None
            if not re.fullmatch(IDENT_PATTERN, hold) or len(parts) > 2 or (
                    len(parts) == 2 and at is None):
                print(f"line {n}: not 'HOLD_ID' or 'HOLD_ID ANNOUNCED_AT': "
                      f"{line.strip()[:80]!r}", file=err)
                bad += 1
                continue
            if cutoff is not None and at is not None and at > cutoff:
                recent += 1  # announced within --since: not yet expected to have an outcome
                continue
            if hold not in seen:
                seen.add(hold)
                ids.append(hold)
    except UnicodeDecodeError as e:
        raise InputError(f"the hold ids are not UTF-8 text ({e.reason} at byte {e.start}):"
                         " save the list as UTF-8") from None
    return ids, recent, bad


def cmd_holds_missing(args: argparse.Namespace, s: Settings) -> int:
    from ..queue.envelope import QUEUE

    if args.file == "-":
        ids, recent, bad = read_lines(sys.stdin, args.since, sys.stderr)
    else:
        with open(args.file, encoding="utf-8") as fh:
            ids, recent, bad = read_lines(fh, args.since, sys.stderr)

    async def run(store: Store) -> list[Any]:
        return await holds_missing(store, ids, s.redis.namespace, QUEUE)
    answers = with_store(s, run) if ids else []
    counts = {k: sum(a.state is k for a in answers) for k in Known}
    for a in answers:
        if args.json and a.state is not Known.DONE:
            print(json.dumps({"hold_id": a.hold_id, "state": a.state.value,
                              **({"waiting": a.detail} if a.detail else {})}))
        elif a.state is Known.UNKNOWN:
            print(a.hold_id)
    print(f"{len(ids)} holds: {counts[Known.UNKNOWN]} unknown (re-announce them), "
          f"{counts[Known.PENDING]} pending, {counts[Known.DONE]} with an outcome"
          + (f"; {recent} announced within --since left out" if recent else "")
          + (f"; {bad} lines not read" if bad else ""), file=sys.stderr)
    return 1 if bad else 0


def add_holds_commands(sub: Any) -> None:
    p = sub.add_parser("holds", help="holds as the ILS sees them (its reconciliation pass)")
    what = p.add_subparsers(dest="what", required=True)
    m = what.add_parser(
        "missing", help="of the hold ids given (one a line), print those the worker has no"
                        " outcome for and never heard of: the ILS re-announces them")
    m.add_argument("file", nargs="?", default="-", metavar="FILE",
                   help="hold ids, one a line, each optionally followed by when the ILS"
                        " announced it (ISO 8601); - or nothing: standard input")
    m.add_argument("--since", type=duration, default=None, metavar="DURATION",
                   help="leave out holds announced less than this long ago (15m, 2h, 1d)")
    m.add_argument("--json", action="store_true",
                   help="one JSON object a line for every hold without an outcome:"
                        " state unknown, or pending with what it waits for")
    m.set_defaults(fn=cmd_holds_missing)
