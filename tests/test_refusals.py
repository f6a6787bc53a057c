"""Keeping a refusal (worker/app/refusals.py) on the real Redis, whatever the payload holds."""

from __future__ import annotations

import json

import pytest

from tests.helpers import with_store
from worker.app.refusals import keep_refusal as reject


@pytest.mark.parametrize("event_id", ["ev-1\ud800", "ev-1\r\nX", "\udc80"])
def test_a_refusal_named_by_an_unstorable_event_id_is_still_kept(settings, clean_redis, event_id):
    """A refused envelope names its event by the event_id it carries (worker.app.intake.
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


def kept_of_two_refused(settings, rclient, tmp_path, **over) -> list[str]:
    """Two different refused events sent the way ``over`` says (each twice, as a
    redelivery would), through a real worker: the event_ids kept in review rejected."""
    import uuid

    from tests.helpers import run_worker, variant, wait_for
    from tests.test_raw_redis_producer import envelope, leftovers, raw_enqueue

    s = variant(settings, mail={"transport": "outbox", "outbox_dir": tmp_path / "out"})
    ns = s.redis.namespace
    with run_worker(s):
        for event in ({"event_id": "a-1", "type": "hold_readyy"},
                      {"event_id": "b-1", "type": "hold_readyy"}):
            rid = str(uuid.uuid4())
            msg = json.loads(envelope("hold_ready", event, None if over.get("no_rid") else rid,
                                      **over.get("fields", {})))
            msg["options"].update(over.get("options", {}))
            for _ in range(2):  # the same message twice, as a redelivery would
                raw_enqueue(rclient, ns, json.dumps(msg), rid)
                # acknowledged before it comes again (the ack deletes the stored copy)
                wait_for(lambda: not any(leftovers(rclient, ns).values()))
    return sorted(r["event_id"] for r in with_store(s, lambda st: st.rejected()))


@pytest.mark.parametrize("message_id", ["", "ils-1"])
def test_refused_messages_sharing_a_message_id_are_each_kept(settings, clean_redis, tmp_path,
                                                              message_id):
    """The producer chooses message_id: two different refused events under one id (empty,
    or reused) were folded into one row of review rejected — the second refusal lost. A
    redelivery of one message still gives one row. Found by tests/test_hostile_input.py."""
    assert kept_of_two_refused(settings, clean_redis, tmp_path,
                               fields={"message_id": message_id}) == ["a-1", "b-1"]


@pytest.mark.parametrize("with_rid", [True, False])
@pytest.mark.parametrize("chosen", ["same", "", "\u3042" * 40, "0" * 32])
def test_a_producer_cannot_choose_what_a_refusal_is_kept_under(settings, clean_redis, tmp_path,
                                                               chosen, with_rid):
    """A producer could set ``options.omitama_raw_sha`` (the decoder kept it as what a
    refusal is filed under) and so fold two different refused events into one row of
    review rejected: the second refusal lost. The row is keyed by what the worker
    computes from the message; a redelivery of one message still gives one row."""
    assert kept_of_two_refused(settings, clean_redis, tmp_path, no_rid=not with_rid,
                               options={"omitama_raw_sha": chosen}) == ["a-1", "b-1"]
