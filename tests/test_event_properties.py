"""The event contract under generated hostile input (hypothesis; pure, no Redis).

Whatever JSON value arrives — valid fields mixed with wrong types, lone surrogates,
control and format characters, huge and tiny numbers, extreme dates, unknown keys —
``parse_event`` returns a valid event or raises EventError, never anything else; a
valid event's text is clean (no control or format characters, NFC), its dates are
in the contract's range and every rule that computes with them is total; a refusal is
one printable, storable line; what names a hold for the call list never fails.
(The end-to-end version, on a real worker, is another test file's job.)
"""

from __future__ import annotations

import json
import math
import unicodedata
from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import hold_event
from tests.test_events import OTHER_EVENTS
from worker.cli.enqueue import split_events
from worker.errors import EventError
from worker.ils.events import (EARLIEST_DAY, EVENT_TYPES, LATEST_DAY, AddressRegistered, HoldReady,
                           hold_ref, json_text, parse_event)
from worker.jdate import TOKYO
from worker.holds.retention import retention_s
from worker.holds.policy import pickup_deadline, pickup_passed, retry_horizon
from worker.settings import DeliverySettings

BRANCHES = {"ogawa", "tamari", "minori"}
D = DeliverySettings()
NOT_IN_TEXT = {"Cc", "Cf", "Cs", "Zl", "Zp"}
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- strategies -------------------------------------------------------------------

NASTY_CHARS = ["\ud800", "\udfff", "\udc80", "\u00ad", "\u200b", "\u200d", "\ufeff", "\u202e",
               "\u2066", "\r", "\n", "\x00", "\x1b", "\x85", "\u2028", "\u2029", "\u0301",
               "\u3099", "\u3000", " ", "\ue000", "猫", "😀"]
chars = st.one_of(st.characters(), st.characters(categories=["Cs", "Cc", "Cf", "Zl", "Zp", "Mn"]),
                  st.sampled_from(NASTY_CHARS))
texts = st.text(chars, max_size=30)
# what a valid text looks like with hostile characters spliced in
spiced = st.builds(lambda a, b, c: a + b + c, st.sampled_from(["吾輩は猫である", "山田 太郎", "Café"]),
                   st.text(st.sampled_from(NASTY_CHARS), max_size=3), texts)
numbers = st.one_of(st.integers(), st.integers(min_value=-10**40, max_value=10**40),
                    st.sampled_from([10**4000, -10**4000, 0, -1, 2**63, 2**64]),
                    st.floats(), st.sampled_from([1e308, -1e308, 5e-324, math.inf, -math.inf]))
days = st.dates().map(date.isoformat)
offsets = st.sampled_from(["+09:00", "Z", "-23:59", "+23:59", "+00:00", "", "+24:00", "+09"])
moments = st.builds(lambda dt, off: dt.isoformat() + off, st.datetimes(), offsets)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, days, moments)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)), max_leaves=8)


VALID: list[dict[str, Any]] = [
    hold_event(item={"title": "吾輩は猫である", "author": "夏目漱石", "call_number": "913.6/N",
                     "material": "book"}),
    *OTHER_EVENTS,
]
idents = st.sampled_from(["H-1", "C-1", "H 1", "", "H-1\r\n", "x" * 65, "Ｈ１", "a" * 64])
instants = st.one_of(moments, st.sampled_from(["9999-12-31T23:59:59-23:59",
                                               "0001-01-01T00:00:00+23:59",
                                               "1999-12-31T23:59:59+09:00"]))
# per field, the values of its own kind that are most likely to get through
SPECIAL: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.one_of(idents, texts), "type": st.sampled_from(sorted(EVENT_TYPES)),
    "hold_id": idents, "card_number": idents,
    "pickup_branch": st.sampled_from(["minori", "tamari", "tokyo", "小川"]),
    "ready_at": instants, "registered_at": instants, "removed_at": instants,
    "pickup_by": st.one_of(days, st.sampled_from(["9999-12-31", "0001-01-01", "2199-12-31",
                                                  "2200-01-01", "1999-12-31"])),
    "contact": st.sampled_from(["phone", "sms"]),
    "patron_name": st.one_of(spiced, texts), "item.title": st.one_of(spiced, texts),
    "item.author": st.one_of(spiced, texts), "item.call_number": st.one_of(spiced, texts),
    "item.material": st.sampled_from(["magazine", "av", "dvd"]),
    "email": st.one_of(texts, st.sampled_from(["not-an-address", "a@b.jp\r\nBcc: x@y.jp"])),
    "application_branch": st.sampled_from(["ogawa", "tokyo"]), "item": json_values,
}
DELETE = object()
changed = st.sampled_from(sorted(SPECIAL)).flatmap(
    lambda path: st.tuples(st.just(path), st.one_of(SPECIAL[path], SPECIAL[path],
                                                    json_values, st.just(DELETE))))
mutation = st.one_of(changed, changed, changed, st.tuples(texts, json_values))  # or a new key


def mutated(base: dict[str, Any], changes: list[tuple[str, Any]]) -> dict[str, Any]:
    ev = json.loads(json.dumps(base))
    for path, value in changes:
        *parents, key = path.split(".") if path.startswith("item.") else [path]
        target = ev
        for p in parents:
            target = target.get(p) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            continue
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    return ev


# a valid event of each type with up to three fields changed, added or dropped
events = st.builds(mutated, st.sampled_from(VALID), st.lists(mutation, max_size=3))
# a hold_ready that is valid but for its text and dates, to try the cleaning and the range
near_valid = st.builds(
    lambda title, author, name, ready, day: hold_event(
        item={"title": title, "author": author, "material": "av"}, patron_name=name,
        ready_at=ready, pickup_by=day),
    spiced, spiced, spiced,
    st.builds(lambda dt, off: dt.isoformat() + off,
              st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2210, 1, 1)),
              st.sampled_from(["+09:00", "Z", "-23:59", "+23:59"])),
    st.dates(min_value=date(1990, 1, 1), max_value=date(2210, 1, 1)).map(date.isoformat))
payloads = st.one_of(near_valid, events, events, json_values)


# -- what must hold ---------------------------------------------------------------

def clean(text: str | None) -> None:
    if text is None:
        return
    assert text and text == text.strip()
    assert not {unicodedata.category(ch) for ch in text} & NOT_IN_TEXT, ascii(text)
    assert unicodedata.is_normalized("NFC", text)
    text.encode("utf-8")


def one_storable_line(text: str | None) -> None:
    if text is None:
        return
    text.encode("utf-8")
    assert not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text), ascii(text)


@SETTINGS
@given(payloads)
def test_parse_event_returns_a_clean_event_or_raises_event_error(payload):
    try:
        ev = parse_event(payload, BRANCHES)
    except EventError as e:
        for text in (str(e), e.field, e.event_id, e.event_type):
            one_storable_line(text)
        return
    ev.model_dump_json().encode("utf-8")
    if isinstance(ev, HoldReady):
        for text in (ev.item.title, ev.item.author, ev.item.call_number, ev.patron_name):
            clean(text)
        assert EARLIEST_DAY <= ev.pickup_by <= LATEST_DAY
        assert EARLIEST_DAY <= ev.ready_at.date() <= LATEST_DAY
        now = datetime.now(TOKYO)
        assert retention_s(ev.pickup_by, now, 30) >= 86400
        retry_horizon(ev.ready_at, ev.pickup_by, D)
        int(ev.ready_at.timestamp())
    elif isinstance(ev, AddressRegistered):
        int(ev.registered_at.timestamp() * 1000)


@SETTINGS
@given(payloads)
def test_what_names_a_hold_for_the_call_list_never_fails(payload):
    ref = hold_ref(payload, BRANCHES)
    if ref is not None:
        clean(ref.title)
        assert ref.pickup_by is None or EARLIEST_DAY <= ref.pickup_by <= LATEST_DAY
        ref.model_dump_json().encode("utf-8")


@SETTINGS
@given(st.builds(lambda title, name: hold_event(item={"title": title, "material": "book"},
                                                patron_name=name), spiced, spiced))
def test_a_valid_hold_with_dirty_text_is_cleaned_or_refused_for_a_control_character(payload):
    try:
        ev = parse_event(payload, BRANCHES)
    except EventError as e:
        assert "control character" in str(e) or "lone surrogate" in str(e) or "blank" in str(e)
        return
    assert isinstance(ev, HoldReady)
    clean(ev.item.title)
    clean(ev.patron_name)


@SETTINGS
@given(st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), texts,
                              st.floats(allow_nan=False)),
                    lambda inner: st.one_of(st.lists(inner, max_size=3),
                                            st.dictionaries(texts, inner, max_size=3)),
                    max_leaves=10))
def test_json_text_is_always_storable_and_reads_back_the_same(value):
    text = json_text(value)
    text.encode("utf-8")
    assert json.loads(text) == value


@settings(max_examples=300, deadline=None)
@given(st.dates(), st.datetimes(min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29)))
def test_the_deadline_rules_are_total_on_every_date(day, now):
    """The last resort lists holds whose event was refused, dates and all: no overflow."""
    now = now.replace(tzinfo=timezone(timedelta(hours=9)))
    assert retention_s(day, now, 30) >= 86400
    pickup_passed(day, now)
    assert retry_horizon(now, day, D) <= now + timedelta(hours=D.max_retry_hours)
    pickup_deadline(day)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.just(json.dumps(hold_event()).encode()),
                          st.just(b""), st.just(b"\xff\xfe\x00")), max_size=20))
def test_enqueue_input_splits_into_one_verdict_per_non_blank_line(lines):
    data = b"\n".join(line.replace(b"\n", b"").replace(b"\r", b"") for line in lines)
    got = split_events(data)
    try:
        json.loads(data.removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
        assert len(got) == 1  # the whole input is one JSON document
        return
    except (ValueError, RecursionError):
        pass
    expected = [n for n, line in enumerate(data.splitlines(), 1) if line.strip()]
    assert [n for n, _, _ in got] == expected
    for _, value, problem in got:
        assert problem is None or problem.startswith("not ")
        one_storable_line(problem)
