"""Events the ILS sent that failed validation, for whoever maintains the integration."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from ...app.refusals import RefusalKind
from ..base import render, settings, store
from ..refusal_ja import refusal_ja
from ..wording import REFUSAL_KIND_JA

# the event inside was valid (or is not what was wrong): validating it again cannot say why
_NOT_THE_EVENT = (RefusalKind.MALFORMED_ENVELOPE, RefusalKind.WRONG_ACTOR,
                  RefusalKind.REFUSED_ADDRESS, RefusalKind.CONFLICTING_EVENT)


async def page(request: Request) -> Response:
    rows = list(reversed(await store(request).rejected()))  # newest first
    branches = set(settings(request).branches)
    for r in rows:
        raw, kind = r.get("raw"), r.get("kind")
        if kind in _NOT_THE_EVENT:
            r["error_ja"] = REFUSAL_KIND_JA[kind]
        else:  # an invalid event (or a row kept before kinds): each field at fault
            r["error_ja"] = ("。".join(refusal_ja(raw if isinstance(raw, str) else None, branches))
                             or REFUSAL_KIND_JA.get(kind or "", ""))
        if not isinstance(raw, str):
            raw = json.dumps(raw, ensure_ascii=False, indent=2)
        else:
            try:
                raw = json.dumps(json.loads(raw), ensure_ascii=False, indent=2)
            except ValueError:
                pass
        r["raw_text"] = raw
    return render(request, "rejected.html", rows=rows)
