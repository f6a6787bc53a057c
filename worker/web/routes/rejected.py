"""Events the ILS sent that failed validation, for whoever maintains the integration."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from ..base import render, settings, store
from ..refusal_ja import refusal_ja


async def page(request: Request) -> Response:
    rows = list(reversed(await store(request).rejected()))  # newest first
    branches = set(settings(request).branches)
    for r in rows:
        raw = r.get("raw")
        r["error_ja"] = "。".join(refusal_ja(raw if isinstance(raw, str) else None, branches))
        if not isinstance(raw, str):
            raw = json.dumps(raw, ensure_ascii=False, indent=2)
        else:
            try:
                raw = json.dumps(json.loads(raw), ensure_ascii=False, indent=2)
            except ValueError:
                pass
        r["raw_text"] = raw
    return render(request, "rejected.html", rows=rows)
