"""Address events from the website: registration and removal of a patron's address.

Registration only records the new address as pending; staff approve it after the
patron's phone call (the library's rule). An address that cannot be used is
refused with a reason and the patron's current state is kept.
"""

from __future__ import annotations

import logging

from .addresses import mask_address, normalise_address
from .errors import AddressError
from .events import AddressRegistered, AddressRemoved
from .intake import reject
from .runtime import Runtime

log = logging.getLogger(__name__)


async def address_registered(rt: Runtime, ev: AddressRegistered, key: str | None = None) -> bool:
    try:
        addr = normalise_address(ev.email)
    except AddressError as e:
        await rt.store.audit(ev.card_number, {"what": "address refused", "staff": "website",
                                              "why": str(e), "branch": ev.application_branch})
        await reject(rt.store, ev.model_dump(mode="json"), f"email: {e}", key=key,
                     event_id=ev.event_id, event_type=ev.type)
        return False
    note = f"typo? did you mean {addr.typo_suggestion}" if addr.typo_suggestion else ""
    await rt.store.register_pending(ev.card_number, addr.display, addr.envelope,
                                    branch=ev.application_branch,
                                    registered_at=ev.registered_at.isoformat(), note=note)
    log.info("card %s: address %s registered, awaiting the patron's call to %s",
             ev.card_number, mask_address(addr.display), ev.application_branch)
    return True


async def address_removed(rt: Runtime, ev: AddressRemoved) -> None:
    await rt.store.remove_address(ev.card_number, removed_at=ev.removed_at.isoformat())
    log.info("card %s: address removed", ev.card_number)
