"""Who may get e-mail, and everything that can happen to a patron's address (pure).

This is the one place that answers "what can happen to a patron's address": the
contact states, the contact rule (:func:`decide_contact`) and every transition —
registered, approved, rejected, removed, suspended, re-enabled — each a named
function from the patron record as stored to a typed :class:`ContactChange`
(fields to set and drop, address-index and pending-list updates, the audit entry).
The store applies any change atomically (``Registry.apply``); nothing here does I/O.

    state       event                       → state       audit kind
    none        registered                  → pending     registered
    active      registered                  → pending     registered (approved address kept)
    suspended   registered                  → pending     registered (bounced address set aside)
    pending     registered (again)          → pending     registered (replaces the pending one)
    pending     approved (code / no code)   → active      approved / approved_without_code
    pending     rejected                    → state before the registration (set-aside
                                              suspended address restored)   rejected
    any         removed                     → none        removed
    active      suspended (its address)     → suspended   suspended
    pending     suspended (approved address)→ pending     suspended_while_pending (old address
                                              set aside as after "registered from suspended")
    other       suspended                   → unchanged   failure_noted / failure_not_suspended
    suspended   re-enabled                  → active      reenabled

Illegal staff actions (approve or reject when nothing is pending, re-enable when not
suspended) raise :class:`~worker.errors.ReviewError` with a message staff can act on.
A staff action repeated after it was done (a double click; staff repeating an action
whose replication was not confirmed) raises :class:`~worker.errors.AlreadyDone` instead:
nothing written, no second audit line. ``reviewed_event``/``reviewed_kind`` on the record
name the last registration approved or rejected, so a repeat is told from a mistake.
Staff approve and reject the registration they were shown (:func:`need_shown`); the
check is part of the transition, so the store makes it in the same atomic step as the
change: a registration that replaced the one on the page is never the one approved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Mapping

from ..errors import AlreadyDone, ReviewError
from .state import Confirmation, ContactState

Record = Mapping[str, str]
"""The patron hash as stored (see worker/store/contacts.py for its fields)."""

ACTIVE_FIELDS = ("address", "envelope", "key")
PENDING_FIELDS = ("pending_address", "pending_envelope", "pending_key", "pending_branch",
                  "pending_at", "pending_event", "pending_carrier", "pending_typo", "prev_state",
                  "code_salt", "code_hash", "code_expires_ms", "code_wrong", "confirmation",
                  "confirmation_detail", "confirmation_lease_ms")
SUSPENDED_FIELDS = tuple(f"suspended_{f}" for f in ACTIVE_FIELDS)
# the last registration staff decided on: its id and the audit kind (approved, …, rejected)
REVIEWED_FIELDS = ("reviewed_event", "reviewed_kind")


class AuditKind(StrEnum):
    """Stable kinds of audit entries: the CLI and the staff page each render them in
    their own language; ``what`` keeps the English line for older readers."""

    REGISTERED = "registered"
    ADDRESS_REFUSED = "address_refused"
    APPROVED = "approved"
    APPROVED_WITHOUT_CODE = "approved_without_code"
    REJECTED = "rejected"
    REMOVED = "removed"
    SUSPENDED = "suspended"
    SUSPENDED_WHILE_PENDING = "suspended_while_pending"
    FAILURE_NOT_SUSPENDED = "failure_not_suspended"
    FAILURE_NOTED = "failure_noted"
    REENABLED = "reenabled"
    CALLED = "called"
    UNCALLED = "uncalled"
    FORGOTTEN = "forgotten"  # `patron forget`: all else about the card was removed


AUDIT_WHAT: dict[AuditKind, str] = {
    AuditKind.REGISTERED: "address registered, awaiting the patron's call",
    AuditKind.ADDRESS_REFUSED: "address refused; state unchanged",
    AuditKind.APPROVED: "approved after the patron's call (code checked)",
    AuditKind.APPROVED_WITHOUT_CODE: "approved after the patron's call WITHOUT the code",
    AuditKind.REJECTED: "registration rejected",
    AuditKind.REMOVED: "address removed",
    AuditKind.SUSPENDED: "address suspended",
    AuditKind.SUSPENDED_WHILE_PENDING: "approved address suspended (new one still pending)",
    AuditKind.FAILURE_NOT_SUSPENDED: "delivery failure; address not suspended",
    AuditKind.FAILURE_NOTED: "delivery failure",
    AuditKind.REENABLED: "address re-enabled",
    AuditKind.CALLED: "phoned about hold {hold_id}",
    AuditKind.UNCALLED: "call undone for hold {hold_id}",
    AuditKind.FORGOTTEN: "everything held about the card removed on request",
}


def audit_entry(kind: AuditKind, staff: str, why: str = "", branch: str | None = None,
                **details: Any) -> dict[str, Any]:
    """An audit entry of ``kind`` (the store adds the time)."""
    return {"kind": kind.value, "what": AUDIT_WHAT[kind].format(**details), "staff": staff,
            "why": why, "branch": branch, **details}


@dataclass(frozen=True)
class ContactChange:
    """What one transition does to a patron, applied atomically by the store.

    ``fields`` are set and ``drop`` deleted on the patron hash; the card is added to
    the address index under ``index_add`` and removed under ``index_remove``;
    the card joins the pending list with score ``pending`` (when the patron
    registered) or leaves it when ``off_pending``. The suspended-cards set follows
    ``fields["state"]``.
    """

    audit: dict[str, Any] | None  # None: a change no audit line is kept for (a wrong code)
    fields: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()
    index_add: tuple[str, ...] = ()
    index_remove: tuple[str, ...] = ()
    pending: int | None = None
    off_pending: bool = False

    @property
    def state(self) -> str | None:
        """The state after the change, or None when the state does not change."""
        return self.fields.get("state")


def state_of(before: Record) -> ContactState:
    return ContactState(before.get("state") or ContactState.NONE)


@dataclass(frozen=True)
class Registration:
    """A validated registration, as :func:`registered` needs it."""

    display: str
    envelope: str
    key: str
    carrier: str | None
    typo_suggestion: str | None
    branch: str
    registered_at: str        # ISO, as the ILS sent it
    registered_ms: int        # the pending list is ordered by when the patron registered
    event_id: str
    code_salt: str
    code_hash: str
    code_expires_ms: int
    masked: str               # the address as logs and audit entries may show it


def registered(before: Record, reg: Registration, **more: Any) -> ContactChange:
    """A patron registered ``reg`` on the website: pending, awaiting their call.

    An approved address stays in use until staff approve the new one; a suspended one
    is set aside, so the bounced address cannot come back through "pending with an
    old address", and is restored if staff reject the new one."""
    state = state_of(before)
    fields: dict[str, Any] = {
        "state": ContactState.PENDING.value, "pending_address": reg.display,
        "pending_envelope": reg.envelope, "pending_key": reg.key,
        "pending_branch": reg.branch, "pending_at": reg.registered_at,
        "pending_event": reg.event_id, "pending_carrier": reg.carrier or "",
        "pending_typo": reg.typo_suggestion or "",
        "prev_state": before.get("prev_state", ContactState.NONE.value)
        if state is ContactState.PENDING else state.value,
        "code_salt": reg.code_salt, "code_hash": reg.code_hash,
        "code_expires_ms": reg.code_expires_ms, "code_wrong": 0,
        "confirmation": Confirmation.SENDING.value, "confirmation_detail": "", **more}
    drop: tuple[str, ...] = ()
    if state is ContactState.SUSPENDED:
        fields.update({f"suspended_{f}": before.get(f, "") for f in ACTIVE_FIELDS})
        drop = ACTIVE_FIELDS
    note = f"typo? did you mean {reg.typo_suggestion}" if reg.typo_suggestion else ""
    return ContactChange(
        audit_entry(AuditKind.REGISTERED, "website", note, reg.branch, address=reg.masked,
                    state=ContactState.PENDING.value),
        fields, drop, index_add=(reg.key,), index_remove=_keys(before, "pending_key"),
        pending=reg.registered_ms)


def _keys(before: Record, *names: str) -> tuple[str, ...]:
    return tuple(k for k in (before.get(n, "") for n in names) if k)


def need_pending(card: str, before: Record) -> None:
    state = state_of(before)
    if state is not ContactState.PENDING:
        raise ReviewError(f"card {card} is not awaiting approval (its state is {state}); "
                          "nothing was changed", kind="not_pending", card=card, state=state.value)


def is_shown(before: Record, shown: str) -> bool:
    """Whether ``shown`` — what staff saw: the registration's id, or its address — names
    the registration pending now."""
    want = shown.strip().lower()
    return bool(want) and want in (before.get("pending_event", "").lower(),
                                   before.get("pending_address", "").lower(),
                                   before.get("pending_envelope", "").lower())


def need_shown(card: str, before: Record, shown: str | None) -> None:
    """Refuse when the registration pending now is not the one staff were shown (the
    patron registered another address since); ``None``: nothing was shown to compare."""
    need_pending(card, before)
    if shown is not None and not is_shown(before, shown):
        raise ReviewError(f"card {card}: the patron registered another address since the list "
                          "was shown; nothing was changed. Reload the list and check the new "
                          "address with the patron", kind="registration_changed", card=card)


def decided(before: Record, shown: str | None, *kinds: AuditKind) -> bool:
    """Whether the registration staff act on (``shown``: its id or address; None: the one
    pending, as a command line without ``--address`` means) was already decided as one of
    ``kinds`` — the action is being repeated. A registration pending now and shown is
    never decided; one approved is recognised by its id or its address (now the approved
    one), one rejected by its id, or by any address while nothing is pending (a rejected
    address is not kept)."""
    want = (shown or "").strip().lower()
    pending = state_of(before) is ContactState.PENDING
    if pending and (not want or is_shown(before, want)):
        return False
    if before.get("reviewed_kind") not in kinds:
        return False
    if want and want == before.get("reviewed_event", "").lower():
        return True
    if pending:
        return False
    if not want:
        return True
    if "@" in want and AuditKind.REJECTED in kinds:
        return True
    return state_of(before) is not ContactState.NONE and want in (
        before.get("address", "").lower(), before.get("envelope", "").lower())


def need_code_usable(card: str, before: Record, tries: int, now_ms: int) -> None:
    """Refuse a code for a registration whose code is locked or expired."""
    if int(before.get("code_wrong") or 0) >= tries:
        raise ReviewError(f"the code for card {card} is locked after {tries} wrong tries; "
                          "approve --without-code with a reason, or ask the patron to register again",
                          kind="code_locked", card=card, tries=tries)
    if now_ms > int(before.get("code_expires_ms") or 0):  # see contact/codes.code_expired
        raise ReviewError(f"the code for card {card} has expired; approve --without-code with a"
                          " reason, or ask the patron to register again for a new code",
                          kind="code_expired", card=card)


def wrong_code(card: str, before: Record, code_hash: str, tries: int) -> ContactChange:
    """A wrong code was read out for the registration whose code hash is ``code_hash``:
    one try fewer for that registration (never for one that replaced it)."""
    need_pending(card, before)
    if before.get("code_hash") != code_hash:
        raise ReviewError(f"card {card}: the patron registered another address meanwhile; "
                          "nothing was changed", kind="registration_changed", card=card)
    return ContactChange(None, {"code_wrong": int(before.get("code_wrong") or 0) + 1})


def approved(card: str, before: Record, staff: str, *, code_hash: str | None, reason: str,
             masked: str, shown: str | None = None, tries: int = 0,
             now_ms: int = 0) -> ContactChange:
    """Staff approved the pending address after the patron's call: with ``code_hash``,
    the hash the code read out was verified against (the code approves that registration
    only, while it is neither locked nor expired); without it, by a stated reason, for
    the registration ``shown``."""
    if decided(before, shown, AuditKind.APPROVED, AuditKind.APPROVED_WITHOUT_CODE):
        raise AlreadyDone(f"card {card}: this registration was approved already; nothing was "
                          "changed", kind="already_approved", card=card)
    need_shown(card, before, shown)
    if code_hash is not None:
        if before.get("code_hash") != code_hash:
            raise ReviewError(f"card {card}: the code read out was for an address the patron "
                              "has since replaced; nothing was changed. Reload the list",
                              kind="registration_changed", card=card)
        need_code_usable(card, before, tries, now_ms)
    kind = AuditKind.APPROVED if code_hash is not None else AuditKind.APPROVED_WITHOUT_CODE
    return ContactChange(
        audit_entry(kind, staff, reason, before.get("pending_branch"), address=masked,
                    state=ContactState.ACTIVE.value, registration=before.get("pending_event"),
                    code_read=code_hash is not None),
        {"state": ContactState.ACTIVE.value, "address": before["pending_address"],
         "envelope": before["pending_envelope"], "key": before["pending_key"],
         **_reviewed(before, kind)},
        PENDING_FIELDS + SUSPENDED_FIELDS, index_add=_keys(before, "pending_key"),
        index_remove=_keys(before, "key", "suspended_key"), off_pending=True)


def rejected(card: str, before: Record, staff: str, reason: str, *,
             masked: str, shown: str | None = None) -> ContactChange:
    """Staff rejected the pending address (the registration ``shown``): back to the state
    before the registration."""
    if decided(before, shown, AuditKind.REJECTED):
        raise AlreadyDone(f"card {card}: this registration was rejected already; nothing was "
                          "changed", kind="already_rejected", card=card)
    need_shown(card, before, shown)
    prev = before.get("prev_state") or ContactState.NONE.value
    fields: dict[str, Any] = {"state": prev, **_reviewed(before, AuditKind.REJECTED)}
    if before.get("suspended_address"):
        fields.update({f: before.get(f"suspended_{f}", "") for f in ACTIVE_FIELDS})
    keep = _keys(before, "key", "suspended_key")
    return ContactChange(
        audit_entry(AuditKind.REJECTED, staff, reason, before.get("pending_branch"),
                    address=masked, state=prev, registration=before.get("pending_event")),
        fields, PENDING_FIELDS + SUSPENDED_FIELDS, index_add=keep,
        index_remove=tuple(k for k in _keys(before, "pending_key") if k not in keep),
        off_pending=True)


def _reviewed(before: Record, kind: AuditKind) -> dict[str, str]:
    """The fields naming the registration decided now (none for one without an id)."""
    event = before.get("pending_event", "")
    return {"reviewed_event": event, "reviewed_kind": kind.value} if event else {}


def removed(before: Record, staff: str, why: str, *, card: str = "",
            need_address: bool = False) -> ContactChange:
    """Every address of the card (approved, pending, set aside) is dropped.
    ``need_address``: refuse (staff asked) when the card has none at all."""
    if need_address and not any(before.get(f) for f in ("address", "pending_address",
                                                        "suspended_address")):
        if before.get("state"):  # a record without an address: removed (or rejected) before
            raise AlreadyDone(f"card {card} has no e-mail address (removed already); nothing "
                              "was changed", kind="already_removed", card=card)
        raise ReviewError(f"card {card} has no e-mail address; nothing was changed",
                          kind="no_address", card=card)
    return ContactChange(
        audit_entry(AuditKind.REMOVED, staff, why, state=ContactState.NONE.value),
        {"state": ContactState.NONE.value},
        ACTIVE_FIELDS + PENDING_FIELDS + SUSPENDED_FIELDS + REVIEWED_FIELDS,
        index_remove=_keys(before, "key", "pending_key", "suspended_key"), off_pending=True)


def suspended(before: Record, reason: str, detail: str,
              address_key: str | None = None) -> ContactChange:
    """Mail to the card's approved address failed in a way only the patron can fix.
    Only that address is suspended; a failure of any other address is only noted."""
    why = f"{reason}: {detail}"
    state = state_of(before)
    if not before.get("key") or (address_key and before.get("key") != address_key):
        return ContactChange(audit_entry(AuditKind.FAILURE_NOT_SUSPENDED, "worker", why,
                                         failed_reason=reason))
    if state is ContactState.ACTIVE:
        return ContactChange(audit_entry(AuditKind.SUSPENDED, "worker", why,
                                         state=ContactState.SUSPENDED.value,
                                         failed_reason=reason),
                             {"state": ContactState.SUSPENDED.value})
    if state is ContactState.PENDING:
        # set the failed address aside exactly as a registration from "suspended" does
        return ContactChange(
            audit_entry(AuditKind.SUSPENDED_WHILE_PENDING, "worker", why,
                        state=ContactState.PENDING.value, failed_reason=reason),
            {"prev_state": ContactState.SUSPENDED.value,
             **{f"suspended_{f}": before.get(f, "") for f in ACTIVE_FIELDS}}, ACTIVE_FIELDS)
    return ContactChange(audit_entry(AuditKind.FAILURE_NOTED, "worker", why,
                                     failed_reason=reason))


def reenabled(card: str, before: Record, staff: str, reason: str) -> ContactChange:
    """Staff put a suspended address back into use (the patron fixed their settings)."""
    if not reason.strip():
        raise ReviewError("re-enabling needs a reason (what the patron changed)",
                          kind="reenable_needs_reason")
    state = state_of(before)
    if state is ContactState.ACTIVE:
        raise AlreadyDone(f"card {card}: the address is in use already (re-enabled or "
                          "approved); nothing was changed", kind="already_active", card=card)
    if state is not ContactState.SUSPENDED:
        raise ReviewError(f"card {card} is not suspended (its state is {state}); "
                          "nothing was changed", kind="not_suspended", card=card,
                          state=state.value)
    return ContactChange(audit_entry(AuditKind.REENABLED, staff, reason,
                                     state=ContactState.ACTIVE.value),
                         {"state": ContactState.ACTIVE.value})

