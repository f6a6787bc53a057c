"""One vocabulary (issue 12): the call-list row built once, every stored kind has its
Japanese label, and the enums keep the strings already stored in Redis (pure)."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from worker.app.refusals import RefusalKind
from worker.app.registration import RegistrationResult
from worker.contact import CALL_REASON_JA, CallReason, Confirmation, ContactState
from worker.contact.changes import AuditKind
from worker.holds.calls import CALL_FIELDS, call_due, call_entry
from worker.holds.outcome import Outcome
from worker.jdate import TOKYO
from worker.store.vocab import OPEN_STATUSES, ClaimVerdict, HoldStatus
from worker.web.wording import CONFIRMATION_JA, KIND_JA, REFUSAL_KIND_JA, STATE_JA

NOW = datetime(2026, 11, 29, 10, 0, 5, 123456, tzinfo=TOKYO)
text = st.none() | st.text(max_size=20)


@given(hold_id=st.text(min_size=1, max_size=20), card=text, branch=text, title=text,
       pickup_by=st.none() | st.dates(), reason=st.sampled_from(CallReason),
       detail=st.text(max_size=50))
def test_a_call_row_has_the_fields_shown_and_reads_back(hold_id, card, branch, title,
                                                       pickup_by, reason, detail):
    row = call_entry(hold_id=hold_id, card_number=card, pickup_branch=branch,
                     pickup_by=pickup_by, reason=reason, title=title, added_at=NOW,
                     detail=detail)
    assert tuple(row) == CALL_FIELDS  # the order stored and shown
    assert json.loads(json.dumps(row, ensure_ascii=False)) == row
    assert row["pickup_by"] == (pickup_by.isoformat() if pickup_by else "")
    assert (row["reason"], row["reason_ja"]) == (reason.value, CALL_REASON_JA[reason])
    assert row["added_at"] == "2026-11-29T10:00:05+09:00"


@given(st.none() | st.dates())
def test_a_call_is_due_on_its_last_day_or_today_when_unknown(pickup_by):
    today = date(2026, 11, 29)
    due = call_due(pickup_by, today)
    assert due == int((pickup_by or today).strftime("%Y%m%d"))
    if pickup_by and pickup_by < date(9999, 12, 31):  # later days come later on the list
        assert call_due(pickup_by + timedelta(days=1), today) > due


def test_every_stored_kind_has_its_japanese_label():
    """The staff page looks these up by the stored string; a member without a label showed
    English (a bounced confirmation mail read "bounced" on 承認待ち)."""
    assert set(ContactState) <= STATE_JA.keys()
    assert set(Confirmation) <= CONFIRMATION_JA.keys()
    assert set(AuditKind) <= KIND_JA.keys()
    assert set(RefusalKind) <= REFUSAL_KIND_JA.keys()
    # looked up by the plain strings Redis gives back
    assert CONFIRMATION_JA.get("bounced") and STATE_JA.get("none") and KIND_JA.get("called")


def test_the_enums_keep_the_strings_already_stored():
    """Redis and the ILS-facing JSON hold these values: renaming one strands the data."""
    assert [m.value for m in HoldStatus] == ["sending", "retrying", "sent", "phoned", "called",
                                             "cancelled", "picked_up"]
    assert [m.value for m in ClaimVerdict] == ["claimed", "done", "busy", "lost", "missing",
                                               "none"]
    assert [m.value for m in Outcome] == ["sent", "phoned", "retry", "busy", "duplicate",
                                          "closed", "lost", "gathering", "gathered"]
    assert [m.value for m in RegistrationResult] == ["refused", "duplicate", "busy", "sent",
                                                     "refused-mail"]
    assert [m.value for m in Confirmation] == ["sending", "sent", "refused", "bounced"]
    assert {"sending", "retrying"} == set(OPEN_STATUSES)
    assert "sending" in OPEN_STATUSES and None not in OPEN_STATUSES  # as read from Redis
