"""The staff phone-call list: what to show and marking a call done (CLI and web alike)."""

from __future__ import annotations

from typing import Any

from .contact.changes import AuditKind, audit_entry
from .errors import ReviewError
from .store import Store

CALL_FIELDS = ("hold_id", "card_number", "pickup_branch", "pickup_by", "reason", "reason_ja",
               "title", "added_at", "detail")


async def calls_view(store: Store, branch: str | None = None) -> list[dict[str, Any]]:
    """The list, earliest pickup deadline first (optionally one pickup branch)."""
    return [{k: r.get(k) for k in CALL_FIELDS} for r in await store.calls(branch)]


async def mark_called(store: Store, hold_id: str, staff: str, note: str = "") -> dict[str, Any]:
    """Take a hold off the list because staff phoned; kept in the patron's audit log."""
    entry = await store.mark_called(hold_id, {"hold_id": hold_id, "staff": staff, "note": note})
    if entry is None:
        raise ReviewError(f"hold {hold_id} is not on the phone-call list "
                          "(already called, cancelled, picked up, or never listed)")
    await store.audit(entry["card_number"], audit_entry(
        AuditKind.CALLED, staff, note, entry.get("pickup_branch"), hold_id=hold_id))
    return entry
