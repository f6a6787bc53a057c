"""Keeping a refusal (worker/refusals.py) on the real Redis, whatever the payload holds."""

from __future__ import annotations

import pytest

from tests.helpers import with_store
from worker.refusals import reject


@pytest.mark.parametrize("event_id", ["ev-1\ud800", "ev-1\r\nX", "\udc80"])
def test_a_refusal_named_by_an_unstorable_event_id_is_still_kept(settings, clean_redis, event_id):
    """A refused envelope names its event by the event_id it carries (worker.intake.
    refuse_message); a lone surrogate there made Redis refuse the row (UnicodeEncodeError),
    the malformed-message actor failed five times and the refusal was lost. Found by
    tests/test_hostile_input.py."""
    raw = '{"queue_name":"other","args":[{"event_id":"ev-1\\ud800"}]}'
    assert with_store(settings, lambda st: reject(st, raw, "queue_name 'other' is not ours",
                                                  key="k1", event_id=event_id,
                                                  event_type="hold\ud800"))
    [row] = with_store(settings, lambda st: st.rejected())
    assert row["event_id"] is None and row["type"] is None
    assert row["raw"] == raw and "not ours" in row["error"]
