"""``omitama-notify purge``: retention of personal data.

``purge`` removes what is past its ``[retention]`` setting now (the worker does the same
once a day by itself) and prints what it removed — or with ``--dry-run`` would remove —
by kind; ``--json`` prints one object per kind. See docs/operations.md, "Retention".
"""

from __future__ import annotations

import argparse
import json
from typing import Any

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


def add_retention_commands(sub: Any) -> None:
    p = sub.add_parser("purge", help="remove what is past its [retention] setting, by kind")
    p.add_argument("--dry-run", action="store_true", help="count only; change nothing")
    p.add_argument("--json", action="store_true", help="one JSON object per kind")
    p.set_defaults(fn=cmd_purge)
