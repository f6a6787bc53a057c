"""``omitama-notify stats [--month YYYY-MM] [--csv]``: the library's figures of a month.

Without ``--csv``: the month's totals per branch and for all branches (what the
「統計」 page shows for it). With ``--csv``: one row per day and branch, UTF-8 with a BOM
(the page's CSV download, byte for byte)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import unicodedata
from typing import Any

from ..settings import Settings


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def cmd_stats(args: argparse.Namespace, s: Settings) -> int:
    from ..app.stats import month_csv, month_period, month_rows
    from ..jdate import now_tokyo
    from ..stats.report import Tally, summary
    from ..store.core import Store

    month = month_period(args.month or now_tokyo().strftime("%Y-%m"))

    async def go() -> Any:
        store = Store.from_settings(s)
        try:
            await store.ping()
            if args.csv:
                return await month_csv(store, s, month)
            return await month_rows(store, s, month)
        finally:
            await store.close()
    got = asyncio.run(go())
    if args.csv:
        sys.stdout.flush()
        sys.stdout.buffer.write(got.encode("utf-8"))
        return 0
    codes = list(s.branches)
    per = {c: Tally() for c in codes}
    everything = Tally()
    for _, branch, tally in got:
        per.setdefault(branch, Tally()).merge(tally)
        everything.merge(tally)
    heads = [s.branches[c].name if c in s.branches else c for c in per] + ["全館"]
    rows = summary([*per.values(), everything])
    first = max(_width(label) for label, _ in rows)
    widths = [max(_width(h), *(_width(v[i]) for _, v in rows)) for i, h in enumerate(heads)]
    print(f"{month.label} の統計({month.first.isoformat()}〜{min(month.last, now_tokyo().date()).isoformat()})")
    print(_pad("", first) + "  " + "  ".join(_pad(h, w) for h, w in zip(heads, widths)).rstrip())
    for label, values in rows:
        print(_pad(label, first) + "  "
              + "  ".join(_pad(v, w) for v, w in zip(values, widths)).rstrip())
    return 0


def add_stats_command(sub: Any) -> None:
    p = sub.add_parser("stats", help="the library's figures of a month (per branch; --csv per day)")
    p.add_argument("--month", default=None, help="YYYY-MM (default: this month, Tokyo)")
    p.add_argument("--csv", action="store_true",
                   help="one row per day and branch, CSV for Excel (UTF-8 with BOM)")
    p.set_defaults(fn=cmd_stats)
