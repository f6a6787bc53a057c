"""The call list grouped by patron (issue 13, item 2): one entry per patron per pickup
branch in the CLI, its JSON and the staff page; one 連絡済み marks the entry; the
patron's phone number from the ILS, validated and kept no longer than the hold."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, strategies as st

from tests.helpers import hold_event, with_store
from tests.test_cli import cli
from tests.test_web import act, flash, history, logged_in, on_call_list, s, web  # noqa: F401
from worker.app.call_groups import group_calls, grouped_rows, tel_uri
from worker.errors import EventError
from worker.ils.events import parse_event

BRANCHES = {"ogawa", "tamari", "minori"}

# -- pure ---------------------------------------------------------------------------

ROW = st.fixed_dictionaries({
    "hold_id": st.text("HX0123456789-", min_size=1, max_size=6),
    "card_number": st.sampled_from(["C1", "C2", "C3"]),
    "pickup_branch": st.sampled_from(sorted(BRANCHES)),
    "pickup_by": st.sampled_from(["", "2099-12-01", "2099-12-03", "2099-12-05"]),
    "patron_name": st.sampled_from(["", "山田 太郎"]),
    "patron_phone": st.sampled_from(["", "0299-58-5828"]),
})


@given(st.lists(ROW, max_size=25))
def test_every_hold_is_in_exactly_one_entry_of_its_card_and_branch(rows):
    groups = group_calls(rows)
    assert sorted((id(h) for g in groups for h in g.holds)) == sorted(id(r) for r in rows)
    assert len({(g.card_number, g.pickup_branch) for g in groups}) == len(groups)
    for g in groups:
        assert all((h["card_number"], h["pickup_branch"]) == (g.card_number, g.pickup_branch)
                   for h in g.holds)
        days = [h["pickup_by"] for h in g.holds]
        assert g.pickup_by == ("" if "" in days else min(days))
        assert g.patron_phone == next((h["patron_phone"] for h in g.holds if h["patron_phone"]), "")
    # entries come in the order of their first hold (the list is earliest deadline first)
    firsts = [rows.index(g.holds[0]) for g in groups]
    assert firsts == sorted(firsts)
    # JSON: one object per hold, unchanged but for `group`
    out = grouped_rows(rows)
    assert sorted(json.dumps({k: v for k, v in o.items() if k != "group"}, sort_keys=True)
                  for o in out) == sorted(json.dumps(r, sort_keys=True) for r in rows)
    assert all(o["group"] == f"{o['pickup_branch']}/{o['card_number']}" for o in out)


@given(st.text(max_size=40))
def test_a_patron_phone_is_a_phone_number_or_refused_naming_the_field(text):
    try:
        ev = parse_event(hold_event(patron_phone=text), BRANCHES)
    except EventError as e:
        assert str(e).startswith("patron_phone:"), e
        return
    phone = ev.patron_phone
    assert phone and re.fullmatch(r"\+?[0-9(][0-9 ()-]*", phone)
    assert 6 <= sum(c.isdigit() for c in phone) <= 15
    assert re.fullmatch(r"tel:\+?[0-9]{6,15}", tel_uri(phone))


def test_phone_numbers_as_people_write_them():
    ok = {"0299-58-5828": "tel:0299585828", "０２９９－５８－５８２８": "tel:0299585828",
          "(0299) 58-5828": "tel:0299585828", "+81 299 58 5828": "tel:+81299585828",
          "090-1234-5678": "tel:09012345678"}
    for given_, uri in ok.items():
        assert tel_uri(parse_event(hold_event(patron_phone=given_), BRANCHES).patron_phone) == uri
    for bad in ("", "12345", "0299-58-5828 内線3", "tel:0299585828", "0299\r\n58", "+", "--"):
        with pytest.raises(EventError, match="^patron_phone"):
            parse_event(hold_event(patron_phone=bad), BRANCHES)
    assert parse_event(hold_event(), BRANCHES).patron_phone is None  # optional


# -- CLI and page, with holds listed by the worker's own code --------------------------

def _family(s):  # noqa: F811
    """C1 has three holds at ogawa (two deadlines) and one at tamari; C2 one at ogawa."""
    phone = {"patron_phone": "0299-11-2233"}
    on_call_list(s, "H1", "C1", pickup_by="2099-12-05", **phone)
    on_call_list(s, "H2", "C1", pickup_by="2099-12-03", **phone,
                 item={"title": "坊っちゃん", "material": "book"})
    on_call_list(s, "H3", "C1", pickup_by="2099-12-05", **phone, contact="email")
    on_call_list(s, "H4", "C1", pickup_by="2099-12-04", pickup_branch="tamari", **phone)
    on_call_list(s, "H5", "C2", pickup_by="2099-12-01", patron_name="佐藤 花子")


def test_review_calls_one_entry_per_patron_and_branch_and_one_call_marks_it(s):  # noqa: F811
    _family(s)
    rows = [json.loads(x) for x in cli("review", "calls", "--json").stdout.splitlines()]
    assert [(r["hold_id"], r["group"]) for r in rows] == [
        ("H5", "ogawa/C2"), ("H2", "ogawa/C1"), ("H1", "ogawa/C1"), ("H3", "ogawa/C1"),
        ("H4", "tamari/C1")]
    assert {r["patron_phone"] for r in rows if r["card_number"] == "C1"} == {"0299-11-2233"}
    text = cli("review", "calls").stdout.splitlines()
    assert text[0].startswith("2099-12-01  ogawa  H5  C2  ") and text[0].endswith("佐藤 花子")
    assert text[1] == "2099-12-03  ogawa  C1  3点  山田 太郎  tel 0299-11-2233"
    assert text[2].startswith("    H2  2099-12-03  ") and "坊っちゃん" in text[2]
    assert text[5] == "    (all at once: review called H2 H1 H3 --staff ID)"
    assert text[6].startswith("2099-12-04  tamari  H4  C1")

    r = cli("review", "called", "H2", "H1", "H3", "H5", "H5", "--staff", "S07", "--note", "母に伝言")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("marked called by S07") == 4
    left = [json.loads(x)["hold_id"] for x in cli("review", "calls", "--json").stdout.splitlines()]
    assert left == ["H4"]
    audit = [h for h in history(s, "C1") if h.get("staff") == "S07"]
    assert [h["what"] for h in audit] == [f"phoned about hold {h}" for h in ("H2", "H1", "H3")]
    assert all(h["why"] == "母に伝言" for h in audit)
    # marking again: nothing is on the list any more; one already gone is named, not fatal
    again = cli("review", "called", "H1", "H2", "--staff", "S07")
    # the same command again (issue 19: safe to repeat): done already, exit 0
    assert again.returncode == 0 and "H1, H2 are marked called already" in again.stdout
    part = cli("review", "called", "H1", "H4", "--staff", "S07")
    assert part.returncode == 0 and "hold H1: not on the phone-call list" in part.stderr


def test_the_page_shows_an_entry_with_a_tel_link_and_marks_it_at_once(s, web):  # noqa: F811
    logged_in(s, web, "S07")
    _family(s)
    page = web.get("/calls").text
    entry = page[page.index('id="callgroup-ogawa/C1"'):]
    entry = entry[:entry.index("</tr>")]
    assert 'href="tel:0299112233"' in entry and "まとめて連絡済み(3点)" in entry
    assert entry.count('name="hold_id" value="H') == 6  # one form per hold, and the entry's
    assert entry.index("坊っちゃん") < entry.index('id="call-H1"')  # earliest first
    h5 = page[page.index('id="call-H5"'):]
    assert "佐藤 花子" in h5[:h5.index("</tr>")] and "tel:" not in h5[:h5.index("</tr>")]
    assert "2人・4件" in page  # ogawa: two patrons, four holds

    # one hold alone, then the rest of the entry with one press
    act(web, "/calls/called", hold_id="H3", anchor="call-H3")
    page = act(web, "/calls/called", hold_id=["H2", "H1", "H3"], note="家族に伝言",
               anchor="callgroup-ogawa/C1")
    assert "予約2点(H2、H1)を連絡済みにしました" in flash(page)
    assert "予約 H3 は既にリストにありませんでした" in flash(page)
    card = page.text[page.text.index('id="called-H2"'):]
    assert card.index('class="flash ok"') < card.index("</article>")  # shown at the undo
    left = [c["hold_id"] for c in with_store(s, lambda st: st.calls())]
    assert left == ["H5", "H4"]
    assert [h["what"] for h in history(s, "C1") if h.get("staff") == "S07"] == [
        "phoned about hold H3", "phoned about hold H2", "phoned about hold H1"]


def test_the_phone_number_is_kept_only_in_the_hold(s, rclient):  # noqa: F811
    from worker.app.calls import mark_called

    def holding() -> list[str]:
        return [k for k in rclient.scan_iter(f"{s.redis.key_prefix}*")
                if "0299-99-8877" in _dump(rclient, k)]
    on_call_list(s, "H1", "C1", patron_phone="0299-99-8877")
    assert holding() == [f"{s.redis.key_prefix}hold:H1"]  # in its stored event only
    assert 0 < rclient.ttl(holding()[0])  # which expires with the hold
    with_store(s, lambda st: mark_called(st, "H1", "S01"))
    # called: still in the hold only, while staff may undo the mark (a day) …
    assert holding() == [f"{s.redis.key_prefix}hold:H1"]
    # … and gone with the event at the first purge after that (worker/holds/retention.py)
    from datetime import timedelta

    from worker.app.retention import purge
    from worker.holds.retention import UNDO_S
    from worker.jdate import now_tokyo
    with_store(s, lambda st: purge(st, s, now=now_tokyo() + timedelta(seconds=UNDO_S + 60)))
    assert holding() == []


def _dump(r, key: str) -> str:
    kind = r.type(key)
    if kind == "hash":
        return json.dumps(r.hgetall(key), ensure_ascii=False)
    if kind == "list":
        return json.dumps(r.lrange(key, 0, -1), ensure_ascii=False)
    if kind == "string":
        return r.get(key) or ""
    if kind == "stream":
        return json.dumps(r.xrange(key), ensure_ascii=False)
    if kind == "zset":
        return json.dumps(r.zrange(key, 0, -1), ensure_ascii=False)
    if kind == "set":
        return json.dumps(sorted(r.smembers(key)), ensure_ascii=False)
    return ""
