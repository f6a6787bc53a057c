"""``omitama-notify bounces …``: classify bounce mails (and, with issue 4, ingest them)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..settings import Settings


def cmd_classify(args: argparse.Namespace, s: Settings) -> int:
    from ..bounces.cli import classify_paths

    unreadable = 0
    for obj in classify_paths(args.paths):
        if obj.get("error"):  # the other files are still classified; the exit status tells
            unreadable += 1
            print(f"omitama-notify: {obj['file']}: {obj['error']}", file=sys.stderr, flush=True)
        if args.json:
            print(json.dumps(obj, ensure_ascii=False), flush=True)
        elif not obj.get("error"):
            print(f"{obj.get('file')}: {obj.get('reason')} "
                  f"{obj.get('status') or ''} {obj.get('recipient') or ''}".rstrip())
    return 1 if unreadable else 0


def cmd_ingest(args: argparse.Namespace, s: Settings) -> int:
    from ..app.ingest import OVER_CAP, ingest_one, read_sources
    from .common import with_store

    async def run(store: Any) -> int:
        counts = {"mails": 0, "bounces": 0, "duplicates": 0, "unreadable": 0, "suspended": 0,
                  "over the daily cap": 0}
        for name, raw in read_sources(args.path, sys.stdin.buffer):
            counts["mails"] += 1
            if isinstance(raw, Exception):
                counts["unreadable"] += 1
                _out(args.json, {"file": name, "error": str(raw)})
                continue
            for row in await ingest_one(store, s, name, raw):
                counts["duplicates"] += bool(row.get("duplicate"))
                counts["bounces"] += bool(row.get("is_bounce"))
                counts["suspended"] += len(row.get("suspended") or [])
                counts["over the daily cap"] += row.get("action") == OVER_CAP
                _out(args.json, row)
        if not args.json:
            print(", ".join(f"{k} {v}" for k, v in counts.items()))
        # like classify: the readable mails are ingested, the exit status tells of the others
        # (a missing path was "unreadable 1" and exit 0: a typo looked like an empty mailbox)
        return 1 if counts["unreadable"] else 0
    return with_store(s, run)


def cmd_watch(args: argparse.Namespace, s: Settings) -> int:
    import signal
    import threading

    from .. import logs
    from ..mailbox.watch import Counts, watch_alone

    logs.long_running(s.logging.format, s.logging.level)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def report(c: Counts) -> None:
        if args.json or not args.quiet:
            for row in c.rows:
                _out(args.json, row)
        if c.mails and not args.json:
            print(f"{c.mails} mail(s): {c.processed} processed, {c.for_staff} kept for staff,"
                  f" {c.duplicates} already ingested", flush=True)
    # one watch per mailbox: a second refuses to start (worker/store/watch_lock.py)
    watch_alone(s, once=args.once, limit=args.limit, stop=stop, report=report)
    return 0


def _out(as_json: bool, row: dict[str, Any]) -> None:
    if as_json:
        print(json.dumps(row, ensure_ascii=False), flush=True)
    elif row.get("error"):
        print(f"{row['file']}: unreadable: {row['error']}")
    elif row.get("duplicate"):
        print(f"{row['file']}: already ingested")
    else:
        what = (f"{row['reason']} ({'permanent' if row['permanent'] else 'temporary'})"
                if row["is_bounce"] else f"not a bounce ({row['reason'] or 'ordinary mail'})")
        trace = f"card {row['card_number']}" if row.get("card_number") else "not traced"
        extra = f"; suspended {', '.join(row['suspended'])}" if row.get("suspended") else ""
        hold = f"; hold {row['hold_id']} → {row['hold_action']}" if row.get("hold_action") else ""
        print(f"{row['file']}: {what}, {row['recipient'] or '-'}, {trace}{hold}{extra}")


def add_bounce_commands(sub: Any) -> None:
    b = sub.add_parser("bounces", help="bounce mails: classify or ingest them").add_subparsers(
        dest="what", required=True)
    bc = b.add_parser("classify", help="classify bounce mails; changes nothing")
    bc.add_argument("paths", nargs="+", help="mail files (.eml), one bounce each")
    bc.add_argument("--json", action="store_true",
                    help="one JSON object per recipient per mail (the DESIGN contract)")
    bc.set_defaults(fn=cmd_classify)
    bi = b.add_parser("ingest", help="ingest bounce mails (file, Maildir, mbox, or - for stdin)")
    bi.add_argument("path", help="a mail file, a Maildir, an mbox, or - for standard input")
    bi.add_argument("--json", action="store_true", help="one JSON object per line instead of a summary")
    bi.set_defaults(fn=cmd_ingest)
    bw = b.add_parser("watch", help="ingest the [bounces] mailbox continuously (its own "
                                    "process, next to the worker)")
    bw.add_argument("--once", action="store_true", help="one pass over the mailbox, then exit")
    bw.add_argument("--limit", type=int, default=None, help="at most N mails per pass")
    bw.add_argument("--json", action="store_true", help="each mail's outcome as one JSON line")
    bw.add_argument("--quiet", action="store_true", help="only the summary of each pass")
    bw.set_defaults(fn=cmd_watch)
