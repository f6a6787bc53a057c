"""E-mail registration: the library's rule, end to end.

A patron registers an address on the website (``address_registered``); we send one
confirmation mail with a six-digit receipt code to it; the patron phones the branch
where they filed the internet-service form and reads the code out; staff approve.
Only then does e-mail become the patron's channel. Until then notices go by phone —
or to the previously approved address, which a new registration does not take away.

States: none → pending → active; pending → (reject) the state before; any →
(address_removed) none. A suspended address set aside by a new registration comes
back if staff reject the new one. Every change is appended to the audit log.
"""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Any

from ..contact import Confirmation
from ..contact.addresses import normalise_address
from ..masking import mask_address
from ..contact.carriers import allow_sender_advice, carrier_label
from ..contact.codes import code_expired, code_expiry, hash_code, new_code, verify_code
from ..errors import AddressError, ReviewError
from ..ils.events import AddressRegistered, AddressRemoved
from .refusals import RefusalKind, keep_refusal
from ..jdate import TOKYO, ja_date
from ..contact.changes import (AuditKind, ContactChange, Record, Registration, approved,
                              audit_entry, decided, need_code_usable, need_shown, registered,
                              rejected, removed, wrong_code)
from ..runtime import Runtime
from ..settings import Settings
from ..store.core import Store, now_ms
from ..mail.verp import Sent
from .send import Delivered, deadline, send_mail

log = logging.getLogger(__name__)


class RegistrationResult(StrEnum):
    """What handling one address_registered came to."""

    REFUSED = "refused"            # the address is refused (kept in `review rejected`)
    DUPLICATE = "duplicate"        # this event was handled already
    BUSY = "busy"                  # another worker is sending its mail: try later
    SENT = "sent"                  # the confirmation mail went out
    REFUSED_MAIL = "refused-mail"  # the relay refused the confirmation mail


class _Seen(Exception):
    def __init__(self, outcome: RegistrationResult) -> None:
        self.outcome = outcome


def _seen_before(before: Record, event_id: str, now: int) -> RegistrationResult | None:
    """The same event again (redelivery, duplicate): one confirmation mail, not several."""
    if before.get("pending_event") != event_id:
        return None
    if before.get("confirmation") in (Confirmation.SENT, Confirmation.REFUSED):
        return RegistrationResult.DUPLICATE
    if int(before.get("confirmation_lease_ms") or 0) > now:
        return RegistrationResult.BUSY
    return None


async def register(rt: Runtime, ev: AddressRegistered,
                   key: str | None = None) -> RegistrationResult:
    """Handle address_registered; returns what happened (:class:`RegistrationResult`)."""
    settings, reg = rt.settings, rt.store.contacts
    try:
        addr = normalise_address(ev.email, check_dns=settings.registration.check_dns)
    except AddressError as e:
        await rt.store.audit(ev.card_number, audit_entry(
            AuditKind.ADDRESS_REFUSED, "website", str(e), ev.application_branch))
        await keep_refusal(rt.store, ev.model_dump(mode="json"), f"email: {e}", key=key,
                           event_id=ev.event_id, event_type=ev.type,
                           kind=RefusalKind.REFUSED_ADDRESS)
        return RegistrationResult.REFUSED
    code = new_code()
    salt, digest = hash_code(code)
    # valid through the whole day the mail names (not to the minute of registering)
    expires = code_expiry(datetime.now(TOKYO), settings.registration.code_ttl_days)
    card = ev.card_number
    registration = Registration(
        display=addr.display, envelope=addr.envelope, key=addr.key, carrier=addr.carrier,
        typo_suggestion=addr.typo_suggestion, branch=ev.application_branch,
        registered_at=ev.registered_at.isoformat(),
        registered_ms=int(ev.registered_at.timestamp() * 1000), event_id=ev.event_id,
        code_salt=salt, code_hash=digest, code_expires_ms=int(expires.timestamp() * 1000),
        masked=mask_address(addr.display))
    lease_until = now_ms() + int(settings.delivery.lease_s * 1000)

    def change(before: Record) -> ContactChange:
        seen = _seen_before(before, ev.event_id, now_ms())
        if seen:
            raise _Seen(seen)
        return registered(before, registration, confirmation_lease_ms=lease_until)

    try:
        await reg.apply(card, change)
    except _Seen as seen:
        return seen.outcome
    d = await send_mail(
        rt, Sent("registration", card, addr.envelope, event_id=ev.event_id),
        lambda token: rt.composer.confirmation(addr.envelope, code, ev.application_branch,
                                               addr.carrier, ja_date(expires), token),
        until=deadline(rt))
    if d.outcome is Delivered.REFUSED:  # the failure row and the bounce steps are done
        await reg.set_confirmation(card, ev.event_id, Confirmation.REFUSED, d.diagnostic)
        log.warning("card %s: confirmation mail to %s refused: %s", card,
                    mask_address(addr.display), d.error)
        return RegistrationResult.REFUSED_MAIL
    if d.outcome is Delivered.TRANSIENT:
        # the actor retries, and a new code replaces this one
        assert d.error is not None
        raise d.error
    await reg.set_confirmation(card, ev.event_id, Confirmation.SENT, d.message_id)
    log.info("card %s: confirmation mail sent to %s", card, mask_address(addr.display))
    return RegistrationResult.SENT


async def pending_now(store: Store, card: str) -> str | None:
    """The id of the registration pending for ``card`` now (None: nothing pending), for a
    command line that named none: DESIGN's ``review approve/reject CARD`` predate
    ``--address``, so they act on the registration pending when they run — bound to that
    very one, so a re-registration between the read and the write still changes nothing.
    With nothing pending, the registration decided last: the command is being repeated
    (``AlreadyDone`` if it was decided that way; refused as not pending if not)."""
    rec = await store.contacts.get(card)
    return (rec.get("pending_event") or rec.get("pending_address") or rec.get("reviewed_event")
            or None)


async def approve(store: Store, settings: Settings, card: str, staff: str, *,
                  shown: str | None = None, code: str | None = None,
                  reason: str | None = None) -> dict[str, str]:
    """Staff approve the registration they were shown (``shown``: its id or its address)
    with the code the patron read out, or without it for a stated reason. The code is
    compared (slowly, on purpose) outside the store's atomic step; that step then approves
    only if the registration is still the one whose code was compared and the one shown
    (``Registry.apply`` re-reads it under WATCH). Returns the record as it was before."""
    reg = store.contacts
    if code is None and not (reason or "").strip():
        raise ReviewError("approving without the code needs a reason",
                          kind="approve_needs_reason")
    if code is None and not (shown or "").strip():
        raise ReviewError(f"card {card}: name the registration you approve (its address as "
                          "the pending list shows it); nothing was changed",
                          kind="approve_needs_registration", card=card)
    code_hash: str | None = None
    tries = settings.registration.max_code_tries
    if code is not None:
        seen = await reg.get(card)
        if decided(seen, shown, AuditKind.APPROVED, AuditKind.APPROVED_WITHOUT_CODE):
            code = None  # a repeat: `approved` says so in the store's step (after the
            code_hash = ""  # replicas confirm); "" approves nothing if that changed since
    if code is not None:
        need_shown(card, seen, shown)
        need_code_usable(card, seen, tries, now_ms())
        code_hash = seen.get("code_hash", "")
        if not verify_code(code, seen.get("code_salt", ""), code_hash):
            _, change = await reg.apply(card, lambda b: wrong_code(card, b, code_hash or "", tries))
            left = tries - int(change.fields["code_wrong"])
            if left > 0:
                raise ReviewError(f"wrong code for card {card}; {left} tries left",
                                  kind="wrong_code", card=card, left=left)
            raise ReviewError(f"wrong code for card {card}; the code is now locked",
                              kind="wrong_code_locked", card=card)
    before, _ = await reg.apply(card, lambda b: approved(
        card, b, staff, code_hash=code_hash, reason=reason or "", shown=shown,
        masked=mask_address(b.get("pending_address", "")), tries=tries, now_ms=now_ms()),
        staff=True)
    return before


async def reject(store: Store, card: str, staff: str, reason: str, *,
                 shown: str | None) -> dict[str, str]:
    """Staff reject the registration they were shown (its id or address): the patron
    goes back to the state before. ``shown`` None only where no one was shown a list."""
    before, _ = await store.contacts.apply(card, lambda b: rejected(
        card, b, staff, reason, masked=mask_address(b.get("pending_address", "")),
        shown=shown), staff=True)
    return before


async def removed_event(store: Store, ev: AddressRemoved) -> None:
    """address_removed from the website."""
    await remove(store, ev.card_number, staff="website",
                 why=f"removed on the website at {ev.removed_at.isoformat()}")


async def remove(store: Store, card: str, *, staff: str, why: str,
                 need_address: bool = False) -> dict[str, str]:
    """Back to ``none``: the patron's addresses (approved, pending, suspended) are dropped.
    ``need_address``: refuse (staff asked) when the card has none at all."""
    before, _ = await store.contacts.apply(card, lambda b: removed(
        b, staff, why, card=card, need_address=need_address))
    return before


async def pending_view(store: Store, settings: Settings, branch: str | None = None) -> list[dict[str, Any]]:
    """What staff need on the call, oldest registration first."""
    reg, rows = store.contacts, []
    sender = settings.mail.from_address
    for card, h in await reg.pending():
        if branch and h.get("pending_branch") != branch:
            continue
        carrier = h.get("pending_carrier") or None
        wrong = int(h.get("code_wrong") or 0)
        code_state = ("locked" if wrong >= settings.registration.max_code_tries else
                      "expired" if code_expired(int(h.get("code_expires_ms") or 0), now_ms())
                      else "valid")
        rows.append({
            "card_number": card, "email": h.get("pending_address"),
            "application_branch": h.get("pending_branch"), "registered_at": h.get("pending_at"),
            "carrier": carrier, "carrier_label": carrier_label(carrier),
            "typo_suggestion": h.get("pending_typo") or None,
            "shared_with": sorted(await reg.cards_with(h.get("pending_key", "")) - {card}),
            "confirmation": h.get("confirmation"), "code": code_state,
            "previous_state": h.get("prev_state"),
            # what staff act on: the page posts it back, so a newer registration is not
            # approved or rejected in its place
            "registration": h.get("pending_event"),
            "read_on_call": allow_sender_advice(carrier, sender)})
    return rows
