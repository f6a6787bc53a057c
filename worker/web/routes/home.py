"""The front page: what needs staff now, at a glance."""

from __future__ import annotations

from datetime import datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from ... import calls as calls_mod
from ... import registration
from ...jdate import TOKYO
from ..base import render, settings, staff, store, today
from .failures import failures_with_state


def _since(rows: list[dict], field: str, start: datetime) -> int:
    n = 0
    for r in rows:
        try:
            at = datetime.fromisoformat(str(r.get(field)))
        except (TypeError, ValueError):
            continue
        if (at if at.tzinfo else at.replace(tzinfo=TOKYO)) >= start:
            n += 1
    return n


async def home(request: Request) -> Response:
    s, st, own = store(request), settings(request), staff(request).branch
    pending = await registration.pending_view(s, st)
    calls = await calls_mod.calls_view(s)
    failures = [f for f in (await failures_with_state(s))[0]
                if not f["handled"] and f.get("card_number")]
    rejected = await s.rejected()
    day = today()
    midnight = datetime(day.year, day.month, day.day, tzinfo=TOKYO)
    soon = (day + timedelta(days=1)).isoformat()
    counts = {
        "pending": len(pending),
        "pending_own": sum(1 for p in pending if own and p["application_branch"] == own),
        "calls": len(calls),
        "calls_own": sum(1 for c in calls if own and c["pickup_branch"] == own),
        "calls_added_today": _since(calls, "added_at", midnight),
        "calls_urgent": sum(1 for c in calls if str(c.get("pickup_by") or "") <= soon),
        "failures_week": _since(failures, "at", midnight - timedelta(days=6)),
        "rejected": len(rejected),
    }
    return render(request, "home.html", counts=counts, own=own,
                  own_name=st.branches[own].name if own in st.branches else None)
