"""The phone-call list as staff work it: one entry per patron per pickup branch.

Holds become ready together (the library traps items three times a day), so one family
may have several holds on the list at one branch: one call tells them all. An entry
gathers the holds of one card for one pickup branch, shows the patron's name and phone
number once, and is due by its earliest hold. Pure: the rows come from
:func:`worker.app.calls.calls_view`, already earliest deadline first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any


def group_key(card_number: str | None, pickup_branch: str | None, hold_id: str = "") -> str:
    """The entry's name in JSON output (``group``) and in the page's anchors. A row that
    names no card (a hold listed after ``patron forget``) is an entry of its own: holds
    of different patrons must never become one call."""
    return f"{pickup_branch or '-'}/{card_number or f'hold-{hold_id}'}"


@dataclass
class CallGroup:
    group: str
    card_number: str
    pickup_branch: str
    patron_name: str = ""
    patron_phone: str = ""
    holds: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pickup_by(self) -> str:
        """The earliest last day of the entry's holds ("" when one is unknown: due now)."""
        days = [h.get("pickup_by") or "" for h in self.holds]
        return "" if "" in days else min(days)

    @property
    def hold_ids(self) -> list[str]:
        return [str(h["hold_id"]) for h in self.holds]


def group_calls(rows: list[dict[str, Any]]) -> list[CallGroup]:
    """Rows of the call list → entries, in the order of their first (earliest) hold.
    The name and number are the first the holds carry (the ILS sends the same for a card)."""
    groups: dict[str, CallGroup] = {}
    for r in rows:
        key = group_key(r.get("card_number"), r.get("pickup_branch"), str(r.get("hold_id") or ""))
        g = groups.get(key)
        if g is None:
            g = groups[key] = CallGroup(key, r.get("card_number") or "",
                                        r.get("pickup_branch") or "")
        g.holds.append(r)
        g.patron_name = g.patron_name or r.get("patron_name") or ""
        g.patron_phone = g.patron_phone or r.get("patron_phone") or ""
    return list(groups.values())


def tel_uri(phone: str) -> str:
    """``tel:`` link of a number as the ILS sent it (validated in worker/ils/events.py):
    digits and a leading + only (RFC 3966 global/local number without separators)."""
    return "tel:" + re.sub(r"[^0-9+]", "", phone)


def grouped_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The JSON of ``review calls``: one object per hold, as before, plus ``group``."""
    out = []
    for g in group_calls(rows):
        out += [{**h, "group": g.group} for h in g.holds]
    return out
