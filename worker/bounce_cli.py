"""``omitama-notify bounces …``: classify bounce mails (and, with issue 4, ingest them)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .settings import Settings


def cmd_classify(args: argparse.Namespace, s: Settings) -> int:
    from .bounces.cli import classify_paths

    for obj in classify_paths(args.paths):
        if args.json:
            print(json.dumps(obj, ensure_ascii=False), flush=True)
        else:
            print(f"{obj.get('file')}: {obj.get('error') or obj.get('reason')} "
                  f"{obj.get('status') or ''} {obj.get('recipient') or ''}".rstrip())
    return 0


def add_bounce_commands(sub: Any) -> None:
    b = sub.add_parser("bounces", help="bounce mails").add_subparsers(dest="what", required=True)
    bc = b.add_parser("classify", help="classify bounce mails; changes nothing")
    bc.add_argument("paths", nargs="+")
    bc.add_argument("--json", action="store_true")
    bc.set_defaults(fn=cmd_classify)
