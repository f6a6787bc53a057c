"""``omitama-notify reminders run [--at ISO-DATETIME]``: one pass of pickup reminders."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from ..jdate import now_tokyo
from ..settings import Settings
from .common import moment


def cmd_reminders_run(args: argparse.Namespace, s: Settings) -> int:
    from ..app.reminders import run_pass
    from ..runtime import Runtime

    async def go() -> dict[str, Any]:
        rt = Runtime.create(s)
        try:
            await rt.store.ping()
            return await run_pass(rt, args.at or now_tokyo())
        finally:
            await rt.close()
    print(json.dumps(asyncio.run(go()), ensure_ascii=False))
    return 0


def add_reminder_commands(sub: Any) -> None:
    p = sub.add_parser("reminders", help="pickup reminders ([reminder] settings)")
    r = p.add_subparsers(dest="reminders_cmd", required=True)
    run = r.add_parser("run", help="send the reminders due now (or at --at), once each")
    run.add_argument("--at", type=moment, default=None,
                     help="run as if it were this moment (ISO 8601; no offset = JST)")
    run.set_defaults(fn=cmd_reminders_run)
