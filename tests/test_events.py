"""The event contract: what every kind of bad input gets (pure; no Redis)."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from tests.helpers import hold_event
from worker.errors import EventError
from worker.events import HoldReady, hold_ref, parse_event, parse_event_json

BRANCHES = {"ogawa", "tamari", "minori"}


def refusal(event) -> EventError:
    with pytest.raises(EventError) as info:
        parse_event(event, BRANCHES)
    return info.value


def mutated(fn) -> dict:
    ev = copy.deepcopy(hold_event())
    fn(ev)
    return ev


def test_valid_hold_ready_is_parsed_with_types():
    ev = parse_event(hold_event(), BRANCHES)
    assert isinstance(ev, HoldReady)
    assert ev.pickup_by == date(2099, 12, 5)
    assert ev.ready_at.utcoffset().total_seconds() == 9 * 3600
    assert ev.item.material == "book" and ev.patron_name == "山田 太郎"


def test_optional_fields_may_be_absent():
    ev = mutated(lambda e: (e.pop("patron_name"), e["item"].pop("author")))
    parsed = parse_event(ev, BRANCHES)
    assert parsed.patron_name is None and parsed.item.author is None


BAD = [
    # (what, mutation, field, words in the message)
    ("missing hold_id", lambda e: e.pop("hold_id"), "hold_id", "is required"),
    ("missing item", lambda e: e.pop("item"), "item", "is required"),
    ("missing title", lambda e: e["item"].pop("title"), "item.title", "is required"),
    ("missing event_id", lambda e: e.pop("event_id"), "event_id", "is required"),
    ("numeric card", lambda e: e.update(card_number=12345), "card_number", "must be a string"),
    ("numeric hold id", lambda e: e.update(hold_id=7), "hold_id", "must be a string"),
    ("null title", lambda e: e["item"].update(title=None), "item.title", "must be a string"),
    ("item is an array", lambda e: e.update(item=["x"]), "item", "must be a JSON object"),
    ("unknown branch", lambda e: e.update(pickup_branch="mito"), "pickup_branch", "unknown branch 'mito'"),
    ("branch in Japanese", lambda e: e.update(pickup_branch="小川"), "pickup_branch", "unknown branch"),
    ("unknown material", lambda e: e["item"].update(material="dvd"), "item.material", "'book', 'magazine' or 'av'"),
    ("unknown contact", lambda e: e.update(contact="sms"), "contact", "'email' or 'phone'"),
    ("naive ready_at", lambda e: e.update(ready_at="2026-11-29T10:00:00"), "ready_at", "UTC offset"),
    ("epoch ready_at", lambda e: e.update(ready_at=1795915273), "ready_at", "valid datetime"),
    ("garbage ready_at", lambda e: e.update(ready_at="yesterday"), "ready_at", "valid datetime"),
    ("pickup_by with time", lambda e: e.update(pickup_by="2026-12-05T00:00:00"), "pickup_by", "YYYY-MM-DD"),
    ("impossible date", lambda e: e.update(pickup_by="2026-02-30"), "pickup_by", "day value is outside"),
    ("slashed date", lambda e: e.update(pickup_by="2026/12/05"), "pickup_by", "valid date"),
    ("CRLF in title", lambda e: e["item"].update(title="猫\r\nBcc: evil@x.jp"), "item.title", "control character (U+000D)"),
    ("LF in patron name", lambda e: e.update(patron_name="山田\n太郎"), "patron_name", "control character (U+000A)"),
    ("NUL in author", lambda e: e["item"].update(author="漱石\x00"), "item.author", "control character (U+0000)"),
    ("line separator in title", lambda e: e["item"].update(title="猫\u2028Bcc: x"), "item.title", "U+2028"),
    ("100 KB title", lambda e: e["item"].update(title="猫" * 100_000), "item.title", "at most 500 characters"),
    ("blank title", lambda e: e["item"].update(title="   "), "item.title", "blank"),
    ("empty hold id", lambda e: e.update(hold_id=""), "hold_id", "at least 1 character"),
    ("hold id with space", lambda e: e.update(hold_id="H 1"), "hold_id", "letters, digits"),
    ("hold id with CRLF", lambda e: e.update(hold_id="H1\r\nX"), "hold_id", "letters, digits"),
    ("extra field", lambda e: e.update(pickup_brnach="ogawa"), "pickup_brnach", "not a field"),
    ("extra item field", lambda e: e["item"].update(isbn="978"), "item.isbn", "not a field"),
    ("boolean contact", lambda e: e.update(contact=True), "contact", "'email' or 'phone'"),
    # issue 14 #2: a lone surrogate is no text; named wherever it is, key or value
    ("lone surrogate in name", lambda e: e.update(patron_name="\ud800x"), "patron_name", "lone surrogate (U+D800)"),
    ("lone surrogate in title", lambda e: e["item"].update(title="猫\udfff"), "item.title", "U+DFFF) at position 1"),
    ("lone surrogate in a key", lambda e: e["item"].update({"\udc80": 1}), "item.\\udc80", "field name"),
    # issue 14 #3: dates far enough from today to overflow the deadline arithmetic
    ("far-future pickup_by", lambda e: e.update(pickup_by="9999-12-31"), "pickup_by", "between 2000-01-01 and 2199-12-31"),
    ("ancient pickup_by", lambda e: e.update(pickup_by="0001-01-01"), "pickup_by", "(got 0001-01-01)"),
    ("far-future ready_at", lambda e: e.update(ready_at="9999-12-31T23:59:59-23:59"), "ready_at", "between"),
    ("a key with a line break", lambda e: e.update({"x\r\nBcc": 1}), "x\\r\\nBcc", "not a field"),
]


@pytest.mark.parametrize("what,mutation,field,words", BAD, ids=[b[0] for b in BAD])
def test_bad_hold_ready_is_refused_naming_the_field(what, mutation, field, words):
    err = refusal(mutated(mutation))
    assert err.field == field
    assert words in str(err)
    assert err.event_id == "ev-H-1" or field == "event_id"
    assert err.event_type == "hold_ready"


@pytest.mark.parametrize("payload,words", [
    ([hold_event()], "must be a JSON object, not list"),
    ("hold_ready", "must be a JSON object, not str"),
    (None, "must be a JSON object, not NoneType"),
    (42, "must be a JSON object, not int"),
    ({"event_id": "e", "type": "hold_exploded"}, "unknown event type 'hold_exploded'"),
    ({"event_id": "e"}, "unknown event type None"),
    ({"event_id": "e", "type": 3}, "unknown event type 3"),
])
def test_not_an_event_at_all(payload, words):
    assert words in str(refusal(payload))


CLEANED = [
    # (what arrives, what the notice shows): format characters (Cf) dropped, then NFC
    ("吾輩は\u00ad猫である", "吾輩は猫である"),            # soft hyphen
    ("吾輩は\u200b猫\u200cで\u2060ある", "吾輩は猫である"),  # zero-width space/non-joiner, word joiner
    ("\ufeff吾輩は猫である\ufeff", "吾輩は猫である"),          # BOMs
    ("\u202eevil\u202c", "evil"),                           # a bidi override cannot reorder it
    ("Cafe\u0301", "Café"),                                   # NFD → NFC
    ("カ\u200b\u3099", "ガ"),                                  # dropping the Cf lets NFC compose
    ("\u200b 猫 \u00ad", "猫"),                                # stripped after cleaning
]


@pytest.mark.parametrize("given,shown", CLEANED)
def test_catalogue_text_is_cleaned_not_refused(given, shown):
    """Issue 14 #11: such characters are common in catalogue records; one of them must not
    turn a mail into a phone call. The patron's name is cleaned the same way."""
    ev = parse_event(mutated(lambda e: (e["item"].update(title=given, author=given),
                                        e.update(patron_name=given))), BRANCHES)
    assert (ev.item.title, ev.item.author, ev.patron_name) == (shown, shown, shown)
    ref = hold_ref(mutated(lambda e: e["item"].update(title=given)), BRANCHES)
    assert ref is not None and ref.title == shown


def test_text_of_only_format_characters_is_blank():
    assert "blank" in str(refusal(mutated(lambda e: e["item"].update(title="\u200b\ufeff"))))


def test_not_json_text():
    with pytest.raises(EventError, match="not valid JSON"):
        parse_event_json("{'single': 'quotes'}", BRANCHES)
    with pytest.raises(EventError, match="not valid JSON"):
        parse_event_json(b"\xff\xfe", BRANCHES)


def test_several_faults_are_all_named():
    err = refusal(mutated(lambda e: (e.pop("hold_id"), e.update(contact="fax"))))
    assert "hold_id: is required" in str(err) and "contact:" in str(err)


OTHER_EVENTS = [  # a valid event of each other type (also the seeds of test_event_properties)
    {"event_id": "e1", "type": "address_registered", "card_number": "C1",
     "email": "taro@docomo.ne.jp", "registered_at": "2026-11-29T10:00:00+09:00",
     "application_branch": "minori"},
    {"event_id": "e2", "type": "address_removed", "card_number": "C1",
     "removed_at": "2026-11-29T10:00:00Z"},
    {"event_id": "e3", "type": "hold_cancelled", "hold_id": "H1"},
    {"event_id": "e4", "type": "hold_picked_up", "hold_id": "H1"},
]


@pytest.mark.parametrize("event", OTHER_EVENTS)
def test_other_event_types_validate(event):
    assert parse_event(event, BRANCHES).type == event["type"]


def test_other_event_types_refuse_bad_fields():
    assert refusal({"event_id": "e1", "type": "address_registered", "card_number": "C1",
                    "email": "x@y.jp", "registered_at": "2026-11-29T10:00:00+09:00",
                    "application_branch": "tokyo"}).field == "application_branch"
    assert refusal({"event_id": "e", "type": "hold_cancelled"}).field == "hold_id"
    assert refusal({"event_id": "e", "type": "address_removed", "card_number": "C1",
                    "removed_at": "2026-11-29"}).field == "removed_at"


# -- what a refused hold_ready still says (it goes to the call list: worker.holds.phone_refused)

def test_a_refused_hold_ready_still_names_its_hold_card_and_branch():
    bad = mutated(lambda e: e["item"].update(material="dvd"))
    ref = hold_ref(bad, BRANCHES)
    assert ref is not None
    assert (ref.hold_id, ref.card_number, ref.pickup_branch) == (bad["hold_id"], bad["card_number"], "ogawa")
    assert ref.title == bad["item"]["title"] and ref.pickup_by == date.fromisoformat(bad["pickup_by"])


@pytest.mark.parametrize("mutation,title,pickup_by", [
    (lambda e: e["item"].update(title="猫\r\nBcc: evil@example.com"), None, "kept"),
    (lambda e: e.update(pickup_by="2026/12/05"), "吾輩は猫である", None),
    (lambda e: e.update(item="吾輩は猫である", pickup_by=20261205), None, None),
])
def test_invalid_parts_are_left_out_of_the_reference(mutation, title, pickup_by):
    bad = mutated(mutation)
    ref = hold_ref(bad, BRANCHES)
    assert ref is not None and ref.title == title
    assert ref.pickup_by == (date.fromisoformat(bad["pickup_by"]) if pickup_by == "kept" else None)


@pytest.mark.parametrize("mutation", [
    lambda e: e.pop("hold_id"),
    lambda e: e.update(hold_id="H 1"),
    lambda e: e.update(card_number=2100000001),
    lambda e: e.update(pickup_branch="tokyo"),
    lambda e: e.pop("pickup_branch"),
    lambda e: e.update(type="hold_cancelled"),  # another event type: not a ready hold
])
def test_no_reference_without_a_trustworthy_hold_card_and_branch(mutation):
    assert hold_ref(mutated(mutation), BRANCHES) is None


@pytest.mark.parametrize("payload", [None, "H-1", ["H-1"], {"type": ["hold_ready"]}])
def test_no_reference_from_what_is_not_an_event(payload):
    assert hold_ref(payload, BRANCHES) is None
