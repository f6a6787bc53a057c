"""A row of the staff phone-call list, built in one place (pure).

Every way onto the list — a notice that cannot go by e-mail, a refused ``hold_ready``
that still names its hold, the last resort, a bounce after sending — stores this row
(``calls`` in Redis, shown by ``review calls`` and the staff page)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from ..contact import CALL_REASON_JA, CallReason
from ..jdate import TOKYO
from .policy import pickup_deadline

# the row's fields, in the order stored and shown
CALL_FIELDS = ("hold_id", "card_number", "pickup_branch", "pickup_by", "reason", "reason_ja",
               "title", "added_at", "detail")


def call_due(pickup_by: date | None, today: date) -> int:
    """The row's place on the list (YYYYMMDD, earliest first): the last day to collect;
    a hold whose last day is unknown is due ``today``, so it is phoned first."""
    return int((pickup_by or today).strftime("%Y%m%d"))


def call_entry(*, hold_id: str, card_number: str | None, pickup_branch: str | None,
               pickup_by: date | None, reason: CallReason, title: str | None,
               added_at: datetime, detail: str = "") -> dict[str, Any]:
    """The row for one hold (``pickup_by`` None: shown empty)."""
    return {"hold_id": hold_id, "card_number": card_number, "pickup_branch": pickup_branch,
            "pickup_by": pickup_by.isoformat() if pickup_by else "",
            "reason": reason.value, "reason_ja": CALL_REASON_JA[reason], "title": title,
            "added_at": added_at.isoformat(timespec="seconds"), "detail": detail}


def passed_reason(pickup_by: date, first_ms: int,
                  waiting: Literal["gathering", "retrying"]) -> CallReason:
    """Why a hold whose last day has passed goes to the list: the event came after that
    day (first seen, ``first_ms``, at or after its end) — the ILS was late — or it came
    in time and the day ran out while the hold was ``waiting``: in its digest window, or
    between retries of its mail. Staff tell the patron different things."""
    if first_ms <= 0:
        return CallReason.PICKUP_PASSED
    first = datetime.fromtimestamp(first_ms / 1000, TOKYO)
    if first >= pickup_deadline(pickup_by):
        return CallReason.PICKUP_PASSED
    return (CallReason.PASSED_WHILE_GATHERING if waiting == "gathering"
            else CallReason.PASSED_WHILE_RETRYING)
