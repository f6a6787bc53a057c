"""Suspended addresses and delivery failures as staff handle them (CLI and web alike).

An address is suspended when mail to it fails in a way only the patron can fix
(their phone's filter refuses us, the address is dead); notices go by phone until
staff re-enable it — after the patron says they changed the setting — or remove it.
"""

from __future__ import annotations

from typing import Any

from . import registration
from .errors import ReviewError
from .failures import REASON_JA
from .registry import Registry, audit_entry
from .store import Store

FAILURE_FIELDS = ("card_number", "hold_id", "reason", "misconfigured_recipient", "permanent",
                  "diagnostic", "advice", "at")


async def suspend(store: Store, card: str, *, reason: str, detail: str,
                  address_key: str | None = None) -> bool:
    """Suspend the card's approved address (only if it is the one that failed).
    Returns True if the state changed."""
    reg = Registry(store)
    changed = False

    def change(b: dict[str, str]):  # type: ignore[no-untyped-def]
        nonlocal changed
        state = b.get("state") or "none"
        if not b.get("key") or (address_key and b.get("key") != address_key):
            return {}, [], audit_entry("delivery failure; address not suspended", "worker",
                                       f"{reason}: {detail}", failed_reason=reason)
        if state == "active":
            changed = True
            return {"state": "suspended"}, [], audit_entry(
                "address suspended", "worker", f"{reason}: {detail}", state="suspended",
                failed_reason=reason)
        if state == "pending":
            # the approved address failed while a new one awaits approval: set the old one
            # aside exactly as a registration from "suspended" would have done
            changed = True
            fields = {"prev_state": "suspended", **{f"suspended_{f}": b.get(f, "")
                                                    for f in ("address", "envelope", "key")}}
            return fields, ["address", "envelope", "key"], audit_entry(
                "approved address suspended (new one still pending)", "worker",
                f"{reason}: {detail}", state="pending", failed_reason=reason)
        return {}, [], audit_entry("delivery failure", "worker", f"{reason}: {detail}",
                                   failed_reason=reason)

    await reg.change(card, change)
    return changed


async def reenable(store: Store, card: str, staff: str, reason: str) -> dict[str, str]:
    """Staff put a suspended address back into use (the patron fixed their settings)."""
    if not reason.strip():
        raise ReviewError("re-enabling needs a reason (what the patron changed)",
                          kind="reenable_needs_reason")
    reg = Registry(store)

    def change(b: dict[str, str]):  # type: ignore[no-untyped-def]
        state = b.get("state") or "none"
        if state != "suspended":
            raise ReviewError(f"card {card} is not suspended (its state is {state}); "
                              "nothing was changed", kind="not_suspended", card=card, state=state)
        return {"state": "active"}, [], audit_entry("address re-enabled", staff, reason,
                                                    state="active")
    return await reg.change(card, change)


async def remove_address(store: Store, card: str, staff: str, reason: str) -> dict[str, str]:
    """Staff remove a patron's address (it cannot be fixed); notices go by phone."""
    if not reason.strip():
        raise ReviewError("removing an address needs a reason", kind="remove_needs_reason")
    return await registration.remove(store, card, staff=staff, why=reason, need_address=True)


async def failures_view(store: Store) -> list[dict[str, Any]]:
    """Delivery failures, newest first, with the reason in plain Japanese."""
    rows = []
    for f in reversed(await store.failures()):
        row = {k: f.get(k) for k in FAILURE_FIELDS}
        row["reason_ja"] = REASON_JA.get(f.get("reason") or "", "その他の理由")
        row["address"] = f.get("address")
        rows.append(row)
    return rows
