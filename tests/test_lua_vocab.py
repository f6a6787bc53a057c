"""The strings the Lua scripts write and answer are members of the enums their headers name
(worker/store/vocab.py): a new status or verdict in Lua without its enum member fails here."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest

from worker.store import vocab
from worker.store.scripts import LUA_DIR

VOCAB = re.compile(r"^-- Vocabulary: (.+?) \(", re.M)
COMMENT = re.compile(r"--.*$", re.M)
# where a script puts a status or a verdict: the value of HSET … "status", what it returns,
# what it compares a status with, and a status it defaults to
STATUS_WRITTEN = re.compile(r'"status",\s*"([^"]*)"')
SAID = [STATUS_WRITTEN,
        re.compile(r'\breturn\s*\{?\s*"([^"]*)"'),
        re.compile(r'[=~]=\s*"([^"]*)"'),
        re.compile(r'\bor\s+"([A-Za-z_][^"]*)"')]
# an outcome appended to the stream: emit(hold_key, hold_id, "<outcome>", …) in the
# outcome steps (outcomes_*.lua), "outcome", "<outcome>" in a script that appends its own
OUTCOME_WRITTEN = [re.compile(r'\bemit\(\s*[^,()]+,\s*[^,()]+,\s*"([^"]*)"'),
                   re.compile(r'"outcome",\s*"([^"]*)"')]
SCRIPTS = sorted(LUA_DIR.glob("*.lua"))


def named_enums(text: str) -> list[type[StrEnum]]:
    """The enums the header's ``-- Vocabulary:`` line names (none: ``none``)."""
    found = VOCAB.findall(text)
    assert len(found) == 1, "the header must have one '-- Vocabulary: <enums> (…)' line"
    if found[0] == "none":
        return []
    enums = []
    for name in (n.strip() for n in found[0].split(",")):
        enum = getattr(vocab, name, None)
        assert isinstance(enum, type) and issubclass(enum, StrEnum), f"{name} is no enum of vocab"
        enums.append(enum)
    return enums


def strays(text: str) -> list[str]:
    """The status and verdict strings ``text`` writes or answers that its header's enums
    do not have (a status written must be a HoldStatus whatever the header says)."""
    enums = named_enums(text)
    allowed = {m.value for e in enums for m in e}
    code = COMMENT.sub("", text)
    bad = [s for rx in SAID for s in rx.findall(code) if s not in allowed]
    bad += [s for s in STATUS_WRITTEN.findall(code) if s not in set(vocab.HoldStatus)]
    bad += [s for rx in OUTCOME_WRITTEN for s in rx.findall(code)
            if s not in set(vocab.HoldOutcome)]
    return sorted(set(bad))


def test_every_script_is_checked() -> None:
    assert len(SCRIPTS) >= 12
    said = sum(len(rx.findall(COMMENT.sub("", p.read_text()))) for p in SCRIPTS for rx in SAID)
    assert said >= 25  # the patterns still find what the hold scripts say


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_lua_strings_are_enum_members(script) -> None:
    assert strays(script.read_text()) == []


@pytest.mark.parametrize("edit", [
    ('redis.call("HSET", hold, "status", outcome)', 'redis.call("HSET", hold, "status", "mailed")'),
    ('return "missing"', 'return "gone"'),
    ('if status ~= "sending"', 'if status ~= "in_flight"'),
    ('return outcome', 'return {"shipped"}'),
])
def test_a_new_string_without_its_member_is_found(edit) -> None:
    text = (LUA_DIR / "finish_hold.lua").read_text()
    old, new = edit
    assert old in text
    assert strays(text.replace(old, new, 1)) == [new.split('"')[-2]]


def test_the_outcome_stream_steps_are_scripts_like_the_others() -> None:
    """The outcome steps live in lua/ (once a string in worker/store/outcomes.py, out of
    this test's sight): each wrapped script has its file, and an outcome name the
    stream does not know is found."""
    from worker.store.outcomes import with_outcomes

    for name in ("finish_hold", "close_hold", "mark_called", "uncall", "rephone_hold"):
        assert (LUA_DIR / f"outcomes_{name}.lua").is_file()
        assert "local function emit" in with_outcomes(name)
    assert not ["outcome" for p in LUA_DIR.parent.glob("*.py")
                if "redis.call(" in p.read_text()], "Lua text outside worker/store/lua/"
    text = (LUA_DIR / "outcomes_finish_hold.lua").read_text()
    assert strays(text.replace('"mailed"', '"emailed"')) == ["emailed"]
    text = (LUA_DIR / "remind_done.lua").read_text()
    assert strays(text.replace('"reminded"', '"nudged"')) == ["nudged"]


def test_a_script_naming_no_enum_may_say_no_status() -> None:
    text = (LUA_DIR / "take_stale.lua").read_text()
    assert strays(text) == []
    assert strays(text.replace("return ids", 'return "sent"')) == ["sent"]
    with pytest.raises(AssertionError):
        named_enums(text.replace("-- Vocabulary: none", "-- Vocabulary: Statuses"))
