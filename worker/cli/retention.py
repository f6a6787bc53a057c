"""``omitama-notify purge`` and ``patron export|forget``: retention of personal data.

``purge`` removes what is past its ``[retention]`` setting now (the worker does the same
once a day by itself) and prints what it removed — or with ``--dry-run`` would remove —
by kind; ``--json`` prints one object per kind. See docs/operations.md, "Retention".
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..app import patron_data
from ..app.retention import purge
from ..settings import Settings
from ..store.core import Store
from .review import with_store


def cmd_purge(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        done = await purge(store, s, dry_run=args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        for kind, n in done.items():
            if args.json:
                print(json.dumps({"kind": kind.value, "count": n, "dry_run": args.dry_run}))
            else:
                print(f"{verb:<12} {n:>7}  {kind.value}")
        return 0
    return with_store(s, run)


def cmd_patron_export(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        data = await patron_data.export(store, s, args.card)
        print(json.dumps(data, ensure_ascii=False, indent=None if args.json else 2))
        return 0
    return with_store(s, run)


def cmd_patron_forget(args: argparse.Namespace, s: Settings) -> int:
    async def run(store: Store) -> int:
        counts = await patron_data.forget(store, s, args.card, args.staff, args.reason)
        listed = counts.pop("listed_for_call", 0)
        print(f"card {args.card}: removed " + ", ".join(
            f"{n} {kind}" for kind, n in counts.items() if n) + "; the audit log keeps one "
            f"line: removed by {args.staff}")
        if listed:  # the patron still has to be told: staff need to know where
            print(f"{listed} ready hold(s) not yet told stay on the call list as 'forgotten'"
                  " (hold id, branch and last day only: find the patron in the ILS)")
        return 0
    return with_store(s, run)


def add_retention_commands(sub: Any) -> None:
    p = sub.add_parser("purge", help="remove what is past its [retention] setting, by kind")
    p.add_argument("--dry-run", action="store_true", help="count only; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per kind")
    p.set_defaults(fn=cmd_purge)

    pa = sub.add_parser("patron", help="a patron's data on request: export or forget it")
    what = pa.add_subparsers(dest="what", required=True)
    e = what.add_parser("export", help="everything held about a card (for a disclosure request)")
    e.add_argument("card", metavar="CARD", help="the patron's card number")
    e.add_argument("--json", action="store_true", help="one JSON object on one line")
    e.set_defaults(fn=cmd_patron_export)
    f = what.add_parser("forget", help="remove everything about a card but an audit line saying so")
    f.add_argument("card", metavar="CARD", help="the patron's card number")
    f.add_argument("--staff", required=True, metavar="ID", help="who removes it")
    f.add_argument("--reason", required=True, metavar="TEXT", help="why (kept in the audit log)")
    f.set_defaults(fn=cmd_patron_forget)


