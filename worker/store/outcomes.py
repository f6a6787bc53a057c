"""The outcome stream: every outcome of a hold, told back to the ILS (issue 13).

Redis Stream ``<key_prefix>outcomes``; each entry has the fields ``hold_id``,
``card_number``, ``outcome``, ``reason``, ``message_id`` and ``at`` (ISO 8601, +09:00),
always all six (empty when they do not apply), trimmed approximately (``MAXLEN ~``) to
``[outcomes] maxlen``. docs/ils-integration.md shows how a non-Python ILS reads it.

An outcome is written by the very script that changes the hold's state — no outcome
without its state, no state without its outcome. Rather than thread the stream through
each state script (and their ARGV lists, some of which end in field/value pairs), each
script is *wrapped*: :func:`with_outcomes` puts the original text, unchanged, inside a
Lua function, runs a small "before" step (what the hold was) and, from the script's
reply, an "after" step that appends the outcome. The caller appends one key (the
stream) and two arguments (maxlen, at) to what the script takes; the wrapper removes
them before the script runs, so the script sees exactly the KEYS and ARGV it declares.
Scripts written with the stream in mind append themselves: ``remind_done.lua``
(``reminded``); the digest's holds are finished by the wrapped ``finish_hold``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cache

from .scripts import lua

DEFAULT_MAXLEN = 100_000


class HoldOutcome(StrEnum):
    MAILED = "mailed"          # the notice (or digest) was handed to the relay
    LISTED = "listed"          # on the staff phone-call list; reason = why not e-mail
    BOUNCED = "bounced"        # a mail for the hold bounced (a `listed` follows)
    CALLED = "called"          # staff marked the call done
    REMINDED = "reminded"      # a pickup reminder was mailed
    CANCELLED = "cancelled"    # hold_cancelled from the ILS
    PICKED_UP = "picked_up"    # hold_picked_up from the ILS


# Shared by every wrapped script. emit() reads the card from the hold (claim_hold.lua
# stores card_number on it) so no caller has to pass it.
_PRELUDE = """\
-- wrapped by worker/store/outcomes.py: KEYS[#KEYS] outcome stream, ARGV[#ARGV-1] maxlen, ARGV[#ARGV] at
local OUT_STREAM = table.remove(KEYS)
local OUT_AT = table.remove(ARGV)
local OUT_MAXLEN = table.remove(ARGV)
local function emit(hold_key, hold_id, outcome, reason, message_id)
  redis.call("XADD", OUT_STREAM, "MAXLEN", "~", OUT_MAXLEN, "*",
             "hold_id", hold_id, "card_number", redis.call("HGET", hold_key, "card_number") or "",
             "outcome", outcome, "reason", reason or "", "message_id", message_id or "",
             "at", OUT_AT)
end
-- the library's statistics (worker/stats/fields.py), counted in this same step:
-- stats:day:{Tokyo day of OUT_AT} under the stream's prefix (Keys.stats_day), one HINCRBY
-- of "{pickup branch}|{metric}" per count
local STATS = (string.gsub(OUT_STREAM, "outcomes$", "")) .. "stats:day:" .. string.sub(OUT_AT, 1, 10)
local function tally(hold_key, metric, by, key)
  local branch = redis.call("HGET", hold_key, "pickup_branch") or "unknown"
  redis.call("HINCRBY", key or STATS, branch .. "|" .. metric, by or 1)
end
local function carrier(hold_key)
  return redis.call("HGET", hold_key, "carrier") or "other"
end
"""

# name → (before, after). `before` runs first; `after` sees the script's reply as `result`.
_RULES: dict[str, tuple[str, str]] = {
    # sent → mailed; phoned → listed (a bounce at send time: bounced, then listed);
    # only when this claim changed the status (not "lost", "missing", or a hold closed meanwhile)
    "finish_hold": (
        'local before = redis.call("HGET", KEYS[1], "status")',
        """\
if (before == "sending" or before == "retrying") and result == ARGV[1] then
  if result == "sent" then
    emit(KEYS[1], ARGV[3], "mailed", "", redis.call("HGET", KEYS[1], "message_id"))
    local shared = string.find(redis.call("HGET", KEYS[1], "digest_holds") or "", ",", 1, true)
    tally(KEYS[1], "mailed." .. (shared and "digest" or "single") .. "." .. carrier(KEYS[1]))
  elseif result == "phoned" then
    local reason = redis.call("HGET", KEYS[1], "reason") or ""
    if reason == "bounced" then
      emit(KEYS[1], ARGV[3], "bounced", reason, "")
      tally(KEYS[1], "bounced." .. (redis.call("HGET", KEYS[1], "bounce_reason") or "undefined")
            .. "." .. carrier(KEYS[1]))
      tally(KEYS[1], "sendfail." .. carrier(KEYS[1]))
    end
    emit(KEYS[1], ARGV[3], "listed", reason, "")
    tally(KEYS[1], "listed." .. reason)
  end
end"""),
    # cancelled / picked_up, once: a repeated event is not a new outcome
    "close_hold": (
        'local before = redis.call("HGET", KEYS[1], "status")\n'
        'local closed = redis.call("HGET", KEYS[1], "closed")',
        """\
if before ~= ARGV[1] and closed ~= ARGV[1] then
  emit(KEYS[1], ARGV[2], ARGV[1], "", "")
end"""),
    # the day's count is noted on the hold (called_stats), so that an undo takes back
    # the count it made, even after midnight
    "mark_called": (
        "",
        'if result then emit(KEYS[3], ARGV[1], "called", "", "")\n'
        '  tally(KEYS[3], "called") redis.call("HSET", KEYS[3], "called_stats", STATS) end'),
    # a misclick undone: the hold is back on the list for the reason it had (not listed
    # anew in the statistics: the call it counted is taken back instead)
    "uncall": (
        'local counted = redis.call("HGET", KEYS[3], "called_stats")',
        'if result then emit(KEYS[3], ARGV[1], "listed", '
        'redis.call("HGET", KEYS[3], "reason") or "", "")\n'
        '  if counted then tally(KEYS[3], "called", -1, counted) '
        'redis.call("HDEL", KEYS[3], "called_stats") end end'),
    # a sent notice bounced later: bounced (naming the mail), then listed
    "rephone_hold": (
        'local before = redis.call("HGET", KEYS[1], "status")',
        """\
if before == "sent" and result == "phoned" then
  emit(KEYS[1], ARGV[1], "bounced", ARGV[4], redis.call("HGET", KEYS[1], "message_id"))
  emit(KEYS[1], ARGV[1], "listed", ARGV[4], "")
  local why = ARGV[5]
  if not why or why == "" then why = "undefined" end
  tally(KEYS[1], "bounced." .. why .. "." .. carrier(KEYS[1]))
  tally(KEYS[1], "listed." .. ARGV[4])
end"""),
}


@cache
def with_outcomes(name: str) -> str:
    """The text of ``lua/<name>.lua`` wrapped so that it also appends its outcomes."""
    before, after = _RULES[name]
    return (f"{_PRELUDE}{before}\nlocal result = (function()\n{lua(name)}\nend)()\n"
            f"{after}\nreturn result\n")


def outcome_args(maxlen: int, at: str) -> list[str | int]:
    """What a caller appends to a wrapped script's ARGV (its KEYS get the stream key)."""
    return [maxlen, at]
