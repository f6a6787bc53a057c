"""``omitama-notify patron export|forget``: a patron's data on request (a disclosure, or
removal: see worker/app/patron_data.py and docs/operations.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..app import patron_data
from ..settings import Settings
from ..store.core import Store
from .review import with_store


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


def add_patron_commands(sub: Any) -> None:
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
