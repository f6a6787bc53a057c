"""Suspended addresses and delivery failures as staff handle them (CLI and web alike).

An address is suspended when mail to it fails in a way only the patron can fix
(their phone's filter refuses us, the address is dead); notices go by phone until
staff re-enable it — after the patron says they changed the setting — or remove it.
"""

from __future__ import annotations

from typing import Any

from ..errors import ReviewError
from ..bounces.failures import REASON_JA
from ..contact.changes import AuditKind, reenabled, removed, suspended
from ..store.core import Store

FAILURE_FIELDS = ("card_number", "hold_id", "reason", "misconfigured_recipient", "permanent",
                  "diagnostic", "advice", "at", "sender_problem")


async def suspend(store: Store, card: str, *, reason: str, detail: str,
                  address_key: str | None = None) -> bool:
    """Suspend the card's approved address (only if it is the one that failed).
    Returns True if the address was taken out of use."""
    _, change = await store.contacts.apply(
        card, lambda b: suspended(b, reason, detail, address_key))
    kind = (change.audit or {}).get("kind")
    return kind in (AuditKind.SUSPENDED, AuditKind.SUSPENDED_WHILE_PENDING)


async def reenable(store: Store, card: str, staff: str, reason: str) -> dict[str, str]:
    """Staff put a suspended address back into use (the patron fixed their settings)."""
    before, _ = await store.contacts.apply(card, lambda b: reenabled(card, b, staff, reason),
                                           staff=True)
    return before


async def remove_address(store: Store, card: str, staff: str, reason: str) -> dict[str, str]:
    """Staff remove a patron's address (it cannot be fixed); notices go by phone."""
    if not reason.strip():
        raise ReviewError("removing an address needs a reason", kind="remove_needs_reason")
    # the change of worker.app.registration.remove, with an address required (not
    # imported from there: registration sends mail, and the send path imports this module)
    before, _ = await store.contacts.apply(card, lambda b: removed(
        b, staff, reason, card=card, need_address=True), staff=True)
    return before


async def failures_view(store: Store) -> list[dict[str, Any]]:
    """Delivery failures, newest first, with the reason in plain Japanese."""
    rows = []
    for f in reversed(await store.failures()):
        row = {k: f.get(k) for k in FAILURE_FIELDS}
        row["reason_ja"] = REASON_JA.get(f.get("reason") or "", "その他の理由")
        row["address"] = f.get("address")
        # bounce mails that proved nothing (worker/bounces/trust.py): shown, not acted on
        row["verified"] = f.get("verified", True)
        row["evidence"] = f.get("evidence")
        row["sender_problem"] = bool(f.get("sender_problem"))  # older rows lack it
        rows.append(row)
    return rows
