"""The contact state machine as a table, without Redis: (state, event) → (state, audit kind),
plus what each change does to the address index and the pending list."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from worker.contact import ContactState
from worker.contact.changes import (AuditKind, ContactChange, Record, Registration, approved,
                                    registered, reenabled, rejected, removed, suspended)
from worker.errors import ReviewError

NEW = Registration(display="new@example.jp", envelope="new@example.jp", key="new@example.jp",
                   carrier=None, typo_suggestion=None, branch="ogawa",
                   registered_at="2026-12-01T10:00:00+09:00", registered_ms=1_000,
                   event_id="E-2", code_salt="s", code_hash="h", code_expires_ms=9_000,
                   masked="n***@example.jp")

# the patron records a card can be in, as stored
NONE: dict[str, str] = {}
ACTIVE = {"state": "active", "address": "old@example.jp", "envelope": "old@example.jp",
          "key": "old@example.jp"}
SUSPENDED = {**ACTIVE, "state": "suspended"}
PENDING_NEW = {"state": "pending", "prev_state": "none", "pending_address": "p@example.jp",
               "pending_envelope": "p@example.jp", "pending_key": "p@example.jp",
               "pending_branch": "ogawa", "pending_event": "E-1", "code_hash": "h1",
               "code_expires_ms": "9000", "code_wrong": "0"}
PENDING_OVER_ACTIVE = {**ACTIVE, **PENDING_NEW, "prev_state": "active"}
PENDING_OVER_SUSPENDED = {**PENDING_NEW, "prev_state": "suspended",
                          "suspended_address": "old@example.jp",
                          "suspended_envelope": "old@example.jp",
                          "suspended_key": "old@example.jp"}

Event = Callable[[Record], ContactChange]
EVENTS: dict[str, Event] = {
    "registered": lambda b: registered(b, NEW),
    "approved": lambda b: approved("C1", b, "S01", code_hash="h1", reason="",
                                   masked="p***@example.jp", tries=5, now_ms=1_000),
    "approved_no_code": lambda b: approved("C1", b, "S01", code_hash=None, shown="E-1",
                                           reason="来館", masked="p***@example.jp"),
    "rejected": lambda b: rejected("C1", b, "S01", "本人でない", masked="p***@example.jp"),
    "removed": lambda b: removed(b, "website", "removed on the website"),
    "suspended": lambda b: suspended(b, "filtered", "carrier filter", "old@example.jp"),
    "reenabled": lambda b: reenabled("C1", b, "S01", "設定を変更した"),
}

REFUSED = "ReviewError"
TABLE: list[tuple[str, dict[str, str], str, str | None, str]] = [
    # name, before, event, state after (None = unchanged), audit kind (or REFUSED)
    ("none", NONE, "registered", "pending", AuditKind.REGISTERED),
    ("active", ACTIVE, "registered", "pending", AuditKind.REGISTERED),
    ("suspended", SUSPENDED, "registered", "pending", AuditKind.REGISTERED),
    ("pending", PENDING_NEW, "registered", "pending", AuditKind.REGISTERED),
    ("pending", PENDING_NEW, "approved", "active", AuditKind.APPROVED),
    ("pending", PENDING_NEW, "approved_no_code", "active", AuditKind.APPROVED_WITHOUT_CODE),
    ("none", NONE, "approved", None, REFUSED),
    ("active", ACTIVE, "approved", None, REFUSED),
    ("pending", PENDING_NEW, "rejected", "none", AuditKind.REJECTED),
    ("pending/active", PENDING_OVER_ACTIVE, "rejected", "active", AuditKind.REJECTED),
    ("pending/suspended", PENDING_OVER_SUSPENDED, "rejected", "suspended", AuditKind.REJECTED),
    ("suspended", SUSPENDED, "rejected", None, REFUSED),
    ("active", ACTIVE, "removed", "none", AuditKind.REMOVED),
    ("pending", PENDING_OVER_SUSPENDED, "removed", "none", AuditKind.REMOVED),
    ("none", NONE, "removed", "none", AuditKind.REMOVED),
    ("active", ACTIVE, "suspended", "suspended", AuditKind.SUSPENDED),
    ("pending/active", PENDING_OVER_ACTIVE, "suspended", None, AuditKind.SUSPENDED_WHILE_PENDING),
    ("suspended", SUSPENDED, "suspended", None, AuditKind.FAILURE_NOTED),
    ("none", NONE, "suspended", None, AuditKind.FAILURE_NOT_SUSPENDED),
    ("pending", PENDING_NEW, "suspended", None, AuditKind.FAILURE_NOT_SUSPENDED),
    ("suspended", SUSPENDED, "reenabled", "active", AuditKind.REENABLED),
    ("active", ACTIVE, "reenabled", None, REFUSED),
    ("none", NONE, "reenabled", None, REFUSED),
]


def _apply(before: dict[str, str], change: ContactChange) -> dict[str, Any]:
    after = {k: v for k, v in before.items() if k not in change.drop}
    after.update(change.fields)
    return after


@pytest.mark.parametrize("name,before,event,state,kind", TABLE,
                         ids=[f"{t[0]}-{t[2]}" for t in TABLE])
def test_transition_table(name: str, before: dict[str, str], event: str, state: str | None,
                          kind: str) -> None:
    if kind == REFUSED:
        with pytest.raises(ReviewError, match="nothing was changed"):
            EVENTS[event](before)
        return
    change = EVENTS[event](before)
    assert change.audit["kind"] == kind
    assert change.state == state
    after = _apply(before, change)
    assert (after.get("state") or "none") == (state or before.get("state") or "none")
    assert change.audit["what"] and "at" not in change.audit  # the store stamps the time


def test_registering_over_a_suspended_address_sets_it_aside_and_rejecting_brings_it_back():
    over = _apply(SUSPENDED, registered(SUSPENDED, NEW))
    assert "address" not in over and over["suspended_address"] == "old@example.jp"
    assert over["prev_state"] == "suspended"
    back = rejected("C1", over, "S01", "x", masked="n***")
    after = _apply(over, back)
    assert after["state"] == "suspended" and after["address"] == "old@example.jp"
    assert "suspended_address" not in after and "pending_address" not in after
    # the old address stays indexed (bounces still find the card), the rejected one goes
    assert back.index_add == ("old@example.jp",) and back.index_remove == ("new@example.jp",)


def test_a_new_registration_keeps_the_approved_address_in_use():
    after = _apply(ACTIVE, registered(ACTIVE, NEW))
    assert after["address"] == "old@example.jp" and after["pending_address"] == "new@example.jp"
    assert after["prev_state"] == "active"


def test_index_and_pending_list_follow_the_address():
    reg = registered(PENDING_NEW, NEW)
    assert reg.index_add == ("new@example.jp",) and reg.index_remove == ("p@example.jp",)
    assert reg.pending == NEW.registered_ms and not reg.off_pending
    ok = approved("C1", PENDING_OVER_SUSPENDED, "S01", code_hash="h1", reason="",
                  masked="p***", tries=5, now_ms=1_000)
    assert ok.index_add == ("p@example.jp",) and ok.index_remove == ("old@example.jp",)
    assert ok.off_pending
    gone = removed(PENDING_OVER_ACTIVE, "S01", "x")
    assert set(gone.index_remove) == {"old@example.jp", "p@example.jp"} and gone.off_pending


def test_only_the_failed_address_is_suspended():
    other = suspended(ACTIVE, "userunknown", "x", address_key="someone-else@example.jp")
    assert other.state is None and other.audit["kind"] == AuditKind.FAILURE_NOT_SUSPENDED
    assert other.audit["failed_reason"] == "userunknown"


def test_pending_card_whose_approved_address_fails_keeps_waiting_without_it():
    change = suspended(PENDING_OVER_ACTIVE, "filtered", "x", "old@example.jp")
    after = _apply(PENDING_OVER_ACTIVE, change)
    assert after["state"] == "pending" and "address" not in after
    assert after["prev_state"] == "suspended" and after["suspended_key"] == "old@example.jp"


def test_reenabling_needs_a_reason():
    with pytest.raises(ReviewError, match="needs a reason"):
        reenabled("C1", SUSPENDED, "S01", "  ")


def test_every_state_is_reachable_and_every_kind_is_used():
    states = {t[3] for t in TABLE if t[3]}
    assert states == {s.value for s in ContactState}
    kinds = {t[4] for t in TABLE} - {REFUSED}
    # the call list's kinds and `patron forget`'s are no contact transitions
    # (worker/app/calls.py and the patron-data commands write them)
    assert kinds == set(AuditKind) - {AuditKind.ADDRESS_REFUSED, AuditKind.CALLED,
                                      AuditKind.UNCALLED, AuditKind.FORGOTTEN}


@pytest.mark.parametrize("act", [
    lambda b: approved("C1", b, "S01", code_hash=None, shown="E-0", reason="来館", masked="x"),
    lambda b: approved("C1", b, "S01", code_hash=None, shown="q@example.jp", reason="来館",
                       masked="x"),
    lambda b: approved("C1", b, "S01", code_hash="h0", reason="", masked="x", tries=5,
                       now_ms=1_000),
    lambda b: rejected("C1", b, "S01", "x", masked="x", shown="E-0"),
], ids=["other id", "other address", "code of another registration", "reject other"])
def test_only_the_registration_shown_or_whose_code_was_read_is_acted_on(act):
    """Issue 24 #1: the check is part of the transition the store applies atomically."""
    with pytest.raises(ReviewError, match="registered another address|since replaced") as e:
        act(PENDING_NEW)
    assert e.value.kind == "registration_changed"


def test_the_shown_registration_matches_by_id_or_address_and_the_audit_names_it():
    for shown in ("E-1", "p@example.jp", " P@Example.JP "):
        c = approved("C1", PENDING_NEW, "S01", code_hash=None, shown=shown, reason="来館",
                     masked="p***@example.jp")
        assert c.audit is not None and c.audit["registration"] == "E-1"
        assert c.audit["address"] == "p***@example.jp" and c.audit["code_read"] is False
    c = approved("C1", PENDING_NEW, "S01", code_hash="h1", reason="", masked="p***@example.jp",
                 tries=5, now_ms=1_000)
    assert c.audit is not None and c.audit["code_read"] is True


def test_a_code_locked_or_expired_at_the_write_is_refused_there():
    locked = {**PENDING_NEW, "code_wrong": "5"}
    with pytest.raises(ReviewError) as e:
        approved("C1", locked, "S01", code_hash="h1", reason="", masked="x", tries=5, now_ms=1)
    assert e.value.kind == "code_locked"
    with pytest.raises(ReviewError) as e:
        approved("C1", PENDING_NEW, "S01", code_hash="h1", reason="", masked="x", tries=5,
                 now_ms=9_001)
    assert e.value.kind == "code_expired"
